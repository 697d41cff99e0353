#!/bin/sh
# End-to-end tests of `nepenthe theory` (SPEC section 7): the table in its three formats,
# the check against quadrature, the figures, the measured curves of a trained model, and
# bad flags. The numbers themselves are tested in tests/test_theory.c.
#
# usage (from the repository root): tests/theory_test.sh [BINARY]   (default build/asan/nepenthe)
# shellcheck disable=SC2016,SC2086
BIN=${1:-build/asan/nepenthe}
. "$(dirname "$0")/lib.sh"
jq_() { tail -n 1 "$1" | $PY -c 'import json, sys; j = json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$2"; }
py() { $PY -c "import sys; sys.exit(0 if ($1) else 1)"; }

nep theory --help
check "theory --help mentions its flags" \
    'succeeded && for f in --t --eps --json --csv --svg --ckpt --data --check; do grep -qF -- "$f" "$T/out" || exit 1; done'

nep theory --json
cp "$T/out" "$T/table.json"
check "--json: 26 rows from t = 0 to 2.5 with t, pruned, kept, p_on, entropy" \
    'succeeded && py "$(jq_ "$T/table.json" "len(j[\"rows\"]) == 26 and abs(j[\"rows\"][-1][\"t\"] - 2.5) < 1e-12 and all(set(r) == {\"t\", \"pruned\", \"kept\", \"p_on\", \"entropy\"} for r in j[\"rows\"])")"'
check "pruned + kept = 1, entropy falls with t, p_on below 1/2" \
    'py "$(jq_ "$T/table.json" "all(abs(r[\"pruned\"] + r[\"kept\"] - 1) < 1e-15 and 0 < r[\"p_on\"] < 0.5 for r in j[\"rows\"]) and all(a[\"entropy\"] > b[\"entropy\"] for a, b in zip(j[\"rows\"], j[\"rows\"][1:]))")"'
nep theory --eps 0 --t 0:2:0.5 --json
check "--eps 0: P[Z > 0] = 1/2 and H = 1 bit at every t (Z is symmetric)" \
    'succeeded && py "$(jq_ "$T/out" "len(j[\"rows\"]) == 5 and all(abs(r[\"p_on\"] - 0.5) < 1e-12 and abs(r[\"entropy\"] - 1) < 1e-12 for r in j[\"rows\"])")"'
nep theory --check --t 0:2.5:0.25 --eps 0.3 --json
check "--check: closed form and quadrature of f_Z agree within 1e-8" \
    'succeeded && py "$(jq_ "$T/out" "j[\"max_abs_diff_quad\"] < 1e-8 and all(abs(r[\"p_on\"] - r[\"p_on_quad\"]) < 1e-8 for r in j[\"rows\"])")"'
nep theory --csv --t 0:1:0.5
check "--csv: a header and one line per threshold" \
    'succeeded && [ "$(head -n 1 "$T/out")" = "t,pruned,kept,p_on,entropy" ] && [ "$(wc -l < "$T/out")" -eq 4 ]'
nep theory
check "the table prints its columns" 'succeeded && grep -q "H (bits)" "$T/out" && [ "$(wc -l < "$T/out")" -eq 27 ]'
nep theory --svg "$T/fig"
check "--svg writes the three figures of Fig. 2 as SVG" \
    'succeeded && for f in fig_weights fig_density fig_entropy; do $PY -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$T/fig/$f.svg" || exit 1; done'

for bad in "--t 1:0:0.1" "--t 0:1:0" "--t a:b:c" "--t 0:1" "--eps -1" "--eps nan"; do
    flag=${bad%% *}
    nep theory $bad
    check "theory $bad: non-zero exit naming $flag" 'failed_cleanly && says "$flag"'
done
nep theory --json --csv
check "--json with --csv is refused" 'failed_cleanly && says --csv'

# --- measured on a trained model -------------------------------------------------------
D=$T/data
$PY "$HERE/tools/make_idx.py" "$D" --train 600 --test 100 || echo "not ok - make_idx.py"
nep train --data-dir "$D" --hidden 32,32 --batch 64 --val 100 --threads 1 --epochs 1 --out "$T/m"
check "train a small MLP" 'succeeded'
nep theory --ckpt "$T/m/model.safetensors" --data-dir "$D" --max-batches 2 --t 0:1.5:0.5 --json --svg "$T/mfig"
cp "$T/out" "$T/measured.json"
check "--ckpt --json: both layers, 4 thresholds, the model's curves" \
    'succeeded && py "$(jq_ "$T/measured.json" "[l[\"name\"] for l in j[\"layers\"]] == [\"act1\", \"act2\"] and all(len(l[\"entropy\"]) == 4 == len(l[\"pruned\"]) for l in j[\"layers\"]) and len(j[\"model\"][\"entropy\"]) == 4")"'
check "measured: nothing pruned at t = 0, more at every larger t, entropies in [0, 1]" \
    'py "$(jq_ "$T/measured.json" "all(l[\"pruned\"][0] == 0 and all(a < b for a, b in zip(l[\"pruned\"], l[\"pruned\"][1:])) and all(0 <= h <= 1 for h in l[\"entropy\"]) and l[\"sigma\"] > 0 for l in j[\"layers\"])")"'
check "--ckpt --svg: the measured curves and one histogram per layer" \
    'for f in fig_measured_entropy fig_measured_pruned hist_act1 hist_act2; do $PY -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$T/mfig/$f.svg" || exit 1; done'
nep theory --ckpt "$T/none.safetensors" --data-dir "$D"
check "--ckpt of a missing file: non-zero exit naming it" 'failed_cleanly && says none.safetensors'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
