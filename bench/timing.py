"""The timing every peer of nepenthe's benchmark shares (bench/torch_peer.py, hf_peer.py,
ort_peer.py): `warmup` untimed calls, then the median of per-call time.perf_counter times,
so that one slow call on a shared machine does not move it."""
import statistics
import time


def median_times(fn, n, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
