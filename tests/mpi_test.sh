#!/bin/sh
# Data-parallel training over MPI ranks (build/nepenthe-mpi, issue 17), against one process,
# on the first 3,000 training and 1,000 test images of Fashion-MNIST (about 20 seconds):
# - an MLP (no BatchNorm, no dropout) trained by `mpirun -np 2` and by `-np 3` (a batch of
#   100 in shares of 33, 33 and 34) logs the one-process run's lines, with weights equal to
#   rounding (the gradient block's sum over ranks adds in another order than one batch's:
#   5e-6 of the largest weight allowed, 1.1e-6 measured); rank 0 alone writes and prints;
# - each rank decodes only its rows: with --augment too (3 ranks, one process's crops);
# - a run stopped after its first epoch resumes with another number of ranks;
# - a rank killed mid-run stops the job, mpirun naming it, and the run resumes to the
#   bytes of an uninterrupted one; one that stops answering makes the others end the job
#   after NEPENTHE_MPI_TIMEOUT seconds;
# - `entropy` over 3 ranks prints one process's counts; `prune` over 2 ranks (NEPENTHE
#   with magnitude and Wanda, IMP, EGP, smallest-grads) logs one process's entropies to
#   every digit (integer counts summed over the ranks), with the same masks;
# - ranks started with other options are refused, naming what differs;
# - with MPI_PARTS=bn instead (tests/mpi_bn_test.sh, the part that reaches oneDNN): a CNN
#   with BatchNorm trains with per-rank statistics (the ranks' weights equal, not one
#   process's) and, with --sync-bn, as one process does (NHWC and NCHW).
#
# usage (from the repository root): tests/mpi_test.sh [BINARY]   (default build/nepenthe)
# shellcheck disable=SC2016,SC2034,SC1091
BIN=${1:-build/nepenthe}
. "$(dirname "$0")/lib.sh"
MPI_BIN=${MPI_BIN:-build/nepenthe-mpi}
# mpirun refuses root without these (CI's containers run as root); one thread per rank
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN="mpirun -x OMP_NUM_THREADS=1 -x ASAN_OPTIONS -x UBSAN_OPTIONS --bind-to none"
if ! [ -x "$MPI_BIN" ] || ! command -v mpirun >/dev/null 2>&1; then
    echo "not ok - $MPI_BIN or mpirun is missing (scripts/install-deps.sh installs OpenMPI; make builds it)"
    echo "0 passed, 1 failed"
    exit 1
fi
mpi() {
    np=$1
    shift
    # shellcheck disable=SC2086
    $MPIRUN -np "$np" "$MPI_BIN" "$@" >"$T/out" 2>"$T/err"
    rc=$?
}
# same_weights A B: every tensor of two model.safetensors within 5e-6 of the largest weight
same_weights() {
    "$ORT_PY" -c 'import sys
import numpy as np
from safetensors.numpy import load_file
a, b = load_file(sys.argv[1]), load_file(sys.argv[2])
assert a.keys() == b.keys(), "other tensors"
scale = max(float(np.abs(v).max()) for v in a.values())
worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
print("largest difference %.3g of weights up to %.3g" % (worst, scale), file=sys.stderr)
sys.exit(0 if worst <= 5e-6 * scale else 1)' "$1" "$2"
}
# signal_rank1 SIG JOB LOG: once LOG holds epoch 1, sends SIG to rank 1 of mpirun JOB
signal_rank1() {
    n=0
    while ! grep -q '"epoch":1' "$3" 2>/dev/null && [ $n -lt 2400 ]; do sleep 0.05; n=$((n + 1)); done
    for p in $(pgrep -P "$2"); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then kill "-$1" "$p"; fi
    done
}
# the log lines without their timing fields
losses() { sed 's/,"img_per_s".*//' "$1"; }

# Fashion-MNIST's first 3,000 training and 1,000 test images, in its own IDX format
mkdir -p "$T/fm"
"$PY" -c 'import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for split, n in (("train", 3000), ("t10k", 1000)):
    for kind, item in (("images-idx3", 784), ("labels-idx1", 1)):
        name = "%s-%s-ubyte" % (split, kind)
        data = gzip.open("%s/%s.gz" % (src, name)).read()
        head = 16 if item > 1 else 8
        out = data[:4] + struct.pack(">I", n) + data[8:head] + data[head:head + n * item]
        open("%s/%s" % (dst, name), "wb").write(out)' /usr/share/datasets/fashion-mnist "$T/fm"
DATA="--data-dir $T/fm"

PART=${MPI_PARTS:-mlp}
MLP="$DATA --hidden 64,64 --val 1000 --epochs 2 --batch 100 --lr 0.05 --threads 1"
if [ "$PART" = mlp ]; then
    # shellcheck disable=SC2086
    nep train $MLP --out "$T/one" --json
    check "one process trains the MLP" 'succeeded && [ -s "$T/one/model.safetensors" ]'

    # shellcheck disable=SC2086
    mpi 2 train $MLP --out "$T/two" --json
    check "2 ranks: the log of the one-process run, weights equal to rounding, one log line per epoch" \
        'succeeded && [ "$(losses "$T/two/log.jsonl")" = "$(losses "$T/one/log.jsonl")" ] && [ "$(wc -l <"$T/two/log.jsonl")" -eq 2 ] && same_weights "$T/one/model.safetensors" "$T/two/model.safetensors" && grep -q "data parallel over 2 ranks" "$T/err"'
    check "2 ranks: rank 0 alone prints the result" '[ "$(grep -c test_top1 "$T/out")" -eq 1 ]'

    # shellcheck disable=SC2086
    mpi 3 train $MLP --out "$T/three"
    check "3 ranks (shares of 33, 33, 34): the same log and weights" \
        'succeeded && [ "$(losses "$T/three/log.jsonl")" = "$(losses "$T/one/log.jsonl")" ] && same_weights "$T/one/model.safetensors" "$T/three/model.safetensors"'

    # --augment: each rank decodes and crops its own rows, taking the other rows' draws too
    # shellcheck disable=SC2086
    nep train $MLP --augment --out "$T/aug1"
    ok=$rc
    # shellcheck disable=SC2086
    mpi 3 train $MLP --augment --out "$T/aug3"
    rc=$((rc + ok))
    check "3 ranks with --augment (random crops and flips): the one-process run's log and weights" \
        'succeeded && [ "$(losses "$T/aug3/log.jsonl")" = "$(losses "$T/aug1/log.jsonl")" ] && same_weights "$T/aug1/model.safetensors" "$T/aug3/model.safetensors" && [ "$(losses "$T/aug1/log.jsonl")" != "$(losses "$T/one/log.jsonl")" ]'

    # stopped after epoch 1 (its checkpoint written), resumed with 3 ranks
    # shellcheck disable=SC2086
    mpi 2 train $MLP --epochs 1 --out "$T/resumed"
    # shellcheck disable=SC2086
    mpi 3 train $MLP --out "$T/resumed" --resume
    check "a 2-rank run resumed with 3 ranks ends with the uninterrupted run's weights" \
        'succeeded && grep -q "resuming" "$T/out" && [ "$(losses "$T/resumed/log.jsonl")" = "$(losses "$T/one/log.jsonl")" ] && same_weights "$T/one/model.safetensors" "$T/resumed/model.safetensors"'

    # a rank killed (SIGKILL) after epoch 1's checkpoint: mpirun stops the whole job, naming the
    # rank, and --resume with 2 ranks ends as an uninterrupted 2-rank run, to the byte. (Not
    # compared with one process: over many steps a rectifier whose input lies within rounding
    # of 0 can take the other side in one of the two, and the runs part; on the whole of
    # Fashion-MNIST, 20 to 500 steps stayed within 2e-7 to 1.5e-5 of the largest weight, and
    # 550 steps parted by 0.17.)
    LONG="$DATA --hidden 64,64 --val 500 --epochs 12 --batch 100 --lr 0.05 --threads 1"
    # shellcheck disable=SC2086
    $MPIRUN -np 2 "$MPI_BIN" train $LONG --out "$T/kill" >"$T/out" 2>"$T/err" &
    job=$!
    signal_rank1 KILL $job "$T/kill/log.jsonl"
    wait $job
    rc=$?
    check "a rank killed mid-run stops the job: mpirun names rank 1, no rank is left" \
        '[ "$rc" -ne 0 ] && grep -q "rank 1" "$T/err" && ! pgrep -f "$T/kill" >/dev/null && ! grep -q "\"epoch\":12" "$T/kill/log.jsonl"'
    # shellcheck disable=SC2086
    mpi 2 train $LONG --out "$T/kill" --resume
    ok=$rc
    # shellcheck disable=SC2086
    mpi 2 train $LONG --out "$T/long"
    rc=$((rc + ok))
    check "the killed run resumed ends with an uninterrupted 2-rank run's log and weights" \
        'succeeded && [ "$(losses "$T/kill/log.jsonl")" = "$(losses "$T/long/log.jsonl")" ] && cmp -s "$T/long/model.safetensors" "$T/kill/model.safetensors"'

    # a rank that stops answering (SIGSTOP): the others give up after NEPENTHE_MPI_TIMEOUT
    # seconds, saying so, and the job ends
    # shellcheck disable=SC2086
    NEPENTHE_MPI_TIMEOUT=2 $MPIRUN -x NEPENTHE_MPI_TIMEOUT -np 2 "$MPI_BIN" train $LONG --out "$T/hang" >"$T/out" 2>"$T/err" &
    job=$!
    signal_rank1 STOP $job "$T/hang/log.jsonl"
    start=$(date +%s)
    wait $job
    rc=$?
    took=$(($(date +%s) - start))
    check "a rank that stops answering: rank 0 ends the job after NEPENTHE_MPI_TIMEOUT=2 s ($took s), saying why" \
        '[ "$rc" -ne 0 ] && says "rank 0 has waited" && says "stopped answering" && [ "$took" -lt 30 ] && ! pgrep -f "$T/hang" >/dev/null'
    NEPENTHE_MPI_TIMEOUT=soon mpi 2 train $MLP --out "$T/never"
    check "a NEPENTHE_MPI_TIMEOUT that is not a number is refused, naming it" 'failed_cleanly && says "NEPENTHE_MPI_TIMEOUT"'

    # NEPENTHE over ranks: entropy counts summed (exact), retraining data parallel
    PRUNE="$DATA --ckpt $T/one/model.safetensors --zeta 0.5 --max-iter 2 --retrain-epochs 1 --delta 0.5 --batch 100 --entropy-batches 8 --threads 1"
    # shellcheck disable=SC2086
    nep prune $PRUNE --out "$T/p1"
    check "one process prunes the MLP twice" 'succeeded && [ -s "$T/p1/iter_2.safetensors" ]'
    # shellcheck disable=SC2086
    mpi 2 prune $PRUNE --out "$T/p2"
    check "prune over 2 ranks: the same entropies, accuracies and pruned counts, the same masks, weights to rounding" \
        'succeeded && [ "$(sed "s/\"seconds\":[0-9.e-]*//" "$T/p2/iterations.jsonl")" = "$(sed "s/\"seconds\":[0-9.e-]*//" "$T/p1/iterations.jsonl")" ] && same_weights "$T/p1/iter_2.safetensors" "$T/p2/iter_2.safetensors" && [ -s "$T/p2/fig_entropy.svg" ]'
    # the entropy command: every count of the one-process run (3 ranks: batches 0, 3, ... on rank 0)
    nep entropy --ckpt "$T/one/model.safetensors" $DATA --batch 100 --json
    ok=$rc
    mv "$T/out" "$T/h1"
    mpi 3 entropy --ckpt "$T/one/model.safetensors" $DATA --batch 100 --json
    rc=$((rc + ok))
    check "entropy over 3 ranks: every layer's counts and entropies those of one process, printed once" \
        'succeeded && [ "$(sed "s/,\"seconds\":[0-9.e-]*//" "$T/out")" = "$(sed "s/,\"seconds\":[0-9.e-]*//" "$T/h1")" ] && grep -q "\"samples\":2000" "$T/out"'
    # the other criteria and methods: Wanda (input norms summed over ranks), IMP, EGP, and the
    # smallest-gradients baseline (gradient sums summed over ranks)
    for m in "--criterion wanda" "--method imp" "--method egp" "--method smallest-grads"; do
        name=$(echo "$m" | tr -cd 'a-z')
        # shellcheck disable=SC2086
        nep prune $PRUNE $m --out "$T/${name}1"
        ok=$rc
        # shellcheck disable=SC2086
        mpi 2 prune $PRUNE $m --out "$T/${name}2"
        rc=$((rc + ok))
        check "prune $m over 2 ranks: the same log, masks and weights" \
            'succeeded && [ "$(sed "s/\"seconds\":[0-9.e-]*//" "$T/${name}2/iterations.jsonl")" = "$(sed "s/\"seconds\":[0-9.e-]*//" "$T/${name}1/iterations.jsonl")" ] && same_weights "$T/${name}1/iter_1.safetensors" "$T/${name}2/iter_1.safetensors"'
    done

    # other options on rank 1 (MPMD): refused before any step
    # shellcheck disable=SC2086
    $MPIRUN -np 1 "$MPI_BIN" train $MLP --out "$T/mixed" : -np 1 "$MPI_BIN" train $MLP --lr 0.1 --out "$T/mixed" \
        >"$T/out" 2>"$T/err"
    rc=$?
    check "ranks started with another --lr are refused, naming what differs" \
        'failed_cleanly && says "1 of 2 ranks differ from rank 0" && ! [ -e "$T/mixed/log.jsonl" ]'

    mpi 2 info --ckpt "$T/one/model.safetensors"
    check "nepenthe-mpi names the commands it runs" 'failed_cleanly && says "nepenthe-mpi runs train, prune and entropy"'

fi

if [ "$PART" = bn ]; then
    # BatchNorm: by default each rank normalizes by its own rows (rank 0's running statistics
    # shared), which is another computation than one process's; --sync-bn sums the statistics
    # and their gradients over the ranks (SyncBatchNorm): 2 steps of the CNN as one process
    # takes them (7e-7 of the largest weight measured; the conv weight gradients, sums of
    # 50,000 terms that nearly cancel, take the rounding of their two halves' order)
    CNN="$DATA --model cnn --val 2872 --epochs 1 --batch 64 --threads 1"
    # shellcheck disable=SC2086
    nep train $CNN --out "$T/bn1"
    ok=$rc
    # shellcheck disable=SC2086
    mpi 2 train $CNN --out "$T/bn2"
    rc=$((rc + ok))
    check "2 ranks train a CNN with per-rank BatchNorm statistics: every rank's weights equal, not one process's" \
        'succeeded && ! same_weights "$T/bn1/model.safetensors" "$T/bn2/model.safetensors" 2>/dev/null'
    # shellcheck disable=SC2086
    mpi 2 train $CNN --sync-bn --out "$T/sync"
    check "--sync-bn: 2 ranks train the CNN as one process does" 'succeeded && same_weights "$T/bn1/model.safetensors" "$T/sync/model.safetensors"'
    # shellcheck disable=SC2086
    NEP_LAYOUT=nchw $MPIRUN -x NEP_LAYOUT -np 2 "$MPI_BIN" train $CNN --sync-bn --out "$T/sync_nchw" >"$T/out" 2>"$T/err"
    rc=$?
    check "--sync-bn in NCHW activations too" 'succeeded && same_weights "$T/bn1/model.safetensors" "$T/sync_nchw/model.safetensors"'
    # shellcheck disable=SC2086
    mpi 3 train $DATA --model cnn --val 2998 --epochs 1 --batch 2 --threads 1 --sync-bn --out "$T/few"
    check "--sync-bn with a batch that leaves a rank no row fails cleanly on every rank, naming SyncBatchNorm" \
        '[ "$rc" -ne 0 ] && says "SyncBatchNorm needs every rank" && ! pgrep -f "$T/few" >/dev/null'

fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
