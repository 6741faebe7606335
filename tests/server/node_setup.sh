# node_setup.sh - installs the official openai and ollama npm packages into
# a cache outside the source tree (once) and sets NPM_DIR. Sourced by the
# node-driven tests. The server never fetches anything; only this set-up
# talks to the npm registry.
NPM_DIR="${AIRLOCK_NPM_DIR:-$HOME/.cache/airlock/npm-server}"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "SKIP: node/npm not installed (scripts/deps.sh installs nodejs npm)"
    exit 77
fi
if [ ! -d "$NPM_DIR/node_modules/openai" ] || [ ! -d "$NPM_DIR/node_modules/ollama" ]; then
    mkdir -p "$NPM_DIR"
    [ -f "$NPM_DIR/package.json" ] || echo '{"name":"airlock-server-tests","private":true}' >"$NPM_DIR/package.json"
    (cd "$NPM_DIR" && npm install --no-audit --no-fund --silent openai@4 ollama@0.5) || {
        echo "FAIL: npm install of openai/ollama failed"; exit 1; }
fi
# ESM resolves packages from the script's folder: run copies from NPM_DIR.
run_node() {
    local script="$1"; shift
    cp "$(dirname "$0")/$script" "$NPM_DIR/$script"
    node "$NPM_DIR/$script" "$@"
}
