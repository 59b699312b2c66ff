#!/usr/bin/env bash
# Create (or complete) the project's virtual environment at .venv/ and install everything into it.
#
# Idempotent: a second run only checks what is there. Versions come from requirements/constraints.txt.
#   - torch/torchvision: a working torch already in the venv (e.g. a CUDA build a user installed) is
#     kept; otherwise the pinned torch 2.14.1 + torchvision 0.29.1. Never the CPU-only 2.13.0 wheel
#     some machines offer: no torchvision exists for it.
#   - detectron2: an importable detectron2 is kept (e.g. the official one built from GitHub);
#     otherwise the registry's sal-detectron2 wheel, repacked into a pure-Python py3 wheel without
#     its stale CPython-3.10 binary (see scripts/repack_detectron2.sh).
#   - then the rest of requirements/runtime.txt, and this project in editable mode, which compiles
#     mqformer_d2._C when a CUDA toolkit is usable (see setup.py).
#
# Environment knobs:
#   PYTHON=python3.11        interpreter used to create the venv
#   MQFORMER_SYSTEM_SITE=1   create the venv with --system-site-packages (reuse a system torch/detectron2)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
constraints="$root/requirements/constraints.txt"
python_bin="${PYTHON:-python3}"

log() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  venv_args=()
  [ "${MQFORMER_SYSTEM_SITE:-0}" = "1" ] && venv_args+=(--system-site-packages)
  log "creating $venv with $("$python_bin" --version 2>&1)"
  "$python_bin" -m venv "${venv_args[@]}" "$venv"
fi
py="$venv/bin/python"
pip=("$py" -m pip install --disable-pip-version-check)

# A constraints file without torch/torchvision, used once a compatible torch is already present so
# that pip never "upgrades" a user's own CUDA build to our pin.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
grep -v -E '^(torch|torchvision)==' "$constraints" > "$work/constraints-no-torch.txt"

torch_ok() {
  "$py" - <<'EOF' 2>/dev/null
import torch, torchvision  # torchvision fails to import against a mismatched torch
major, minor = (int(x) for x in torch.__version__.split(".")[:2])
assert (major, minor) >= (2, 1), torch.__version__
assert not torch.__version__.startswith("2.13.0"), "CPU-only 2.13.0 wheel has no torchvision"
EOF
}

if torch_ok; then
  log "keeping torch $("$py" -c 'import torch; print(torch.__version__)')"
else
  log "installing torch and torchvision (pinned; a few minutes)"
  "${pip[@]}" -c "$constraints" torch torchvision
  torch_ok || { log "ERROR: torch/torchvision installed but do not import together"; exit 1; }
fi
active_constraints="$work/constraints-no-torch.txt"

"${pip[@]}" -q -c "$active_constraints" wheel "numpy<2"

if "$py" -c "import detectron2" 2>/dev/null; then
  log "keeping detectron2 $("$py" -c 'import detectron2; print(detectron2.__version__)')"
else
  log "installing detectron2 from the repacked sal-detectron2 wheel"
  wheel_path="$(bash "$root/scripts/repack_detectron2.sh" "$py" "$work/d2")"
  "${pip[@]}" -q -c "$active_constraints" "$wheel_path"
fi

log "installing runtime requirements"
"${pip[@]}" -q -c "$active_constraints" -r "$root/requirements/runtime.txt"

log "installing mqformer_d2 (editable)"
"${pip[@]}" -q -c "$active_constraints" --no-build-isolation --no-deps -e "$root"

"$py" -c "import mqformer_d2, detectron2, open_clip, panopticapi; print('[setup] ok: mqformer_d2', mqformer_d2.__version__, '| detectron2', detectron2.__version__, '| compiled op:', mqformer_d2.layers.ms_deform_attn.extension_available())"
