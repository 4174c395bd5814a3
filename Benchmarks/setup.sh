# Sourced by the benchmark drivers: the shared virtualenv and the system tools they need.
#   bench_setup REQUIREMENTS_FILE "python import check" [apt packages whose command is missing…]
bench_setup() {
  local requirements="$1" check="$2"
  shift 2
  VENV="$ROOT/Benchmarks/.venv-bench"
  local python="${PYTHON:-python3}"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[bench] creating virtualenv $VENV" >&2
    "$python" -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c "$check" 2>/dev/null; then
    echo "[bench] installing Python requirements into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet -r "$requirements"
  fi
  local missing=() package command
  for package in "$@"; do
    command="$package"
    [ "$package" = time ] && command=/usr/bin/time
    command -v "$command" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[bench] installing ${missing[*]} (apt-get install -y)" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get install -y "${missing[@]}" || { $sudo apt-get update && $sudo apt-get install -y "${missing[@]}"; }
  fi
}
