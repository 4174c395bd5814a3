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

# Installs clients/python into the virtualenv VENV from a copy under STAMP_DIR (so that the
# build leaves nothing in the source tree), again whenever the client's files change.
#   bench_client VENV STAMP_DIR LABEL
bench_client() {
  local venv="$1" dir="$2" label="$3"
  if [ ! -d "$ROOT/clients/python" ]; then
    echo "[$label] clients/python not found: the client configurations will fail" >&2
    return 0
  fi
  mkdir -p "$dir"
  local stamp="$dir/.client-installed" digest
  digest="$(cd "$ROOT/clients/python" && find . -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -path './build/*' \
    ! -path './.pytest_cache/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ] || ! "$venv/bin/python" -c "import mbdata_client" 2>/dev/null; then
    echo "[$label] installing clients/python into $venv" >&2
    rm -rf "$dir/client-src"
    mkdir -p "$dir/client-src"
    (cd "$ROOT/clients/python" && tar --exclude=__pycache__ --exclude='*.egg-info' --exclude=./build -cf - .) | tar -C "$dir/client-src" -xf -
    "$venv/bin/python" -m pip install --quiet "$dir/client-src"
    echo "$digest" > "$stamp"
  fi
}
