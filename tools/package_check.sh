#!/usr/bin/env bash
# `make package-check` / `make bundle`: the wheel and the bundle are the product, so check them as a
# user gets them, outside the repo.
#
#   wheel   build sdist + wheel (the wheel from the sdist, so a file missing from the sdist fails),
#           install the wheel into a fresh venv in a temp dir, run --version, drive `serve --sandbox`
#           over stdio (tools/stdio_smoke.py with that venv's python and mcp client), then the same
#           through `uvx --from <wheel>` (uv from the package index, into a throwaway venv).
#   bundle  `mcpb validate` + `mcpb pack` on the unpacked sdist (so no untracked file, e.g. a .env,
#           can end up in the bundle), unzip the .mcpb and start it from its manifest as a host
#           would (server.type "uv": `uv run --directory <bundle> stripe-identity-mcp serve`).
#   all     both (CI).
# Artifacts are copied to dist/ on success. Progress goes to stderr.
set -euo pipefail

mode=${1:-all}
case "$mode" in wheel | bundle | all) ;; *) echo "usage: $0 [wheel|bundle|all]" >&2; exit 2 ;; esac

repo=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
MCPB_VERSION=2.1.2 # @anthropic-ai/mcpb, pinned: validate/pack behaviour is part of what is checked
# npm packages are kept between local runs (CI starts without it); everything else is fresh each run.
cache=${PACKAGE_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stripe-identity-mcp}
work=$(mktemp -d "${TMPDIR:-/tmp}/sim-package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
export UV_CACHE_DIR="$work/uv-cache" PIP_DISABLE_PIP_VERSION_CHECK=1
started=$SECONDS

# pip's own chatter (index warnings) only when it fails.
pip_install() {
    "$@" >"$work/pip.log" 2>&1 || {
        cat "$work/pip.log" >&2
        fail "pip install"
    }
}
step() { printf '== [%3ss] %s\n' "$((SECONDS - started))" "$*" >&2; }
fail() { echo "package-check FAILED: $*" >&2; exit 1; }

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/stripe_identity_mcp/__init__.py")
[ -n "$version" ] || fail "no __version__ in stripe_identity_mcp/__init__.py"
prompts=$(sed -n 's/^name: *//p' "$repo"/prompts/*.md | paste -sd, -)

step "throwaway tools venv: build, uv"
"$PYTHON" -m venv "$work/tools"
pip_install "$work/tools/bin/python" -m pip install --quiet build uv

step "build sdist, then the wheel from it"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$repo" >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    fail "build"
}
sdist=$(ls "$work"/dist/stripe_identity_mcp-"$version".tar.gz) || fail "no sdist for version $version"
wheel=$(ls "$work"/dist/stripe_identity_mcp-"$version"-py3-none-any.whl) || fail "no wheel for version $version"

step "fresh venv outside the repo, only the wheel (and its dependencies) in it"
"$PYTHON" -m venv "$work/venv"
pip_install "$work/venv/bin/python" -m pip install --quiet "$wheel"
cd "$work" # no .env, no checkout on sys.path
"$work/venv/bin/python" - "$repo" <<'EOF' || fail "the package was imported from the checkout"
import sys, stripe_identity_mcp
assert not stripe_identity_mcp.__file__.startswith(sys.argv[1]), stripe_identity_mcp.__file__
EOF
smoke=("$work/venv/bin/python" "$repo/tools/stdio_smoke.py" --expect-version "$version" --prompts "$prompts")

if [ "$mode" != bundle ]; then
    step "stripe-identity-mcp --version"
    got=$("$work/venv/bin/stripe-identity-mcp" --version)
    [ "$got" = "stripe-identity-mcp $version" ] || fail "--version said '$got', expected $version"

    step "installed wheel: serve --sandbox over stdio"
    "${smoke[@]}" -- "$work/venv/bin/stripe-identity-mcp" serve --sandbox

    step "uvx --from <wheel> stripe-identity-mcp serve --sandbox"
    "${smoke[@]}" -- "$work/tools/bin/uvx" --from "$wheel" stripe-identity-mcp serve --sandbox

    step "lowest declared versions: the wheel with every runtime dependency (and the redis extra) at its lower bound"
    # The pins come from the wheel's own Requires-Dist, so a bound nobody tested cannot stay; the
    # optional extras users install (redis) are pinned too, only the test extra is not.
    lower_bounds='import importlib.metadata as m, re
for req in m.requires("stripe-identity-mcp") or []:
    found = re.match(r"^([A-Za-z0-9_.-]+)[^;]*?>=\s*([0-9][^,;\s]*)", req)
    marker = req.partition(";")[2]
    if found and ("extra" not in marker or "redis" in marker):
        print(f"{found[1]}=={found[2]}")'
    mapfile -t pins < <("$work/venv/bin/python" -c "$lower_bounds")
    [ "${#pins[@]}" -ge 8 ] || fail "expected a lower bound on every runtime dependency, got: ${pins[*]}"
    echo "   ${pins[*]}" >&2
    "$work/tools/bin/uv" venv --quiet --python "$(command -v "$PYTHON")" "$work/lowest"
    pip_install "$work/tools/bin/uv" pip install --quiet --python "$work/lowest/bin/python" "$wheel" "${pins[@]}" \
        pytest hypothesis jsonschema
    "$work/lowest/bin/python" "$repo/tools/stdio_smoke.py" --expect-version "$version" --prompts "$prompts" \
        -- "$work/lowest/bin/stripe-identity-mcp" serve --sandbox
    # Settings and transports are where older releases behaved differently: run those tests on them.
    (cd "$repo" && PYTHONPATH="$repo" "$work/lowest/bin/python" -m pytest -q -x -p no:cacheprovider \
        tests/test_settings.py tests/test_config_errors.py tests/test_stdio.py tests/http tests/test_replicas.py >&2) ||
        fail "tests on the lowest declared versions"
fi

if [ "$mode" != wheel ]; then
    step "mcpb $MCPB_VERSION (npm, cached in $cache/mcpb-$MCPB_VERSION)"
    mcpb="$cache/mcpb-$MCPB_VERSION/node_modules/.bin/mcpb"
    if [ ! -x "$mcpb" ]; then
        npm install --silent --no-audit --no-fund --prefix "$cache/mcpb-$MCPB_VERSION" \
            "@anthropic-ai/mcpb@$MCPB_VERSION" >&2
    fi

    step "mcpb validate + pack (from the unpacked sdist)"
    mkdir "$work/stage"
    tar -xzf "$sdist" -C "$work/stage" --strip-components=1
    "$mcpb" validate "$work/stage/manifest.json" >&2 || fail "mcpb validate"
    bundle="$work/dist/stripe-identity-mcp-$version.mcpb"
    "$mcpb" pack "$work/stage" "$bundle" >"$work/pack.log" 2>&1 || {
        cat "$work/pack.log" >&2
        fail "mcpb pack"
    }

    step "packed bundle: start it from its manifest (uv run), tools/list + a real call"
    "$work/venv/bin/python" -m zipfile -e "$bundle" "$work/unpacked"
    [ ! -e "$work/unpacked/tests" ] && [ ! -e "$work/unpacked/.env" ] || fail "the bundle carries files it should not"
    PATH="$work/tools/bin:$PATH" "${smoke[@]}" --bundle "$work/unpacked"
fi

mkdir -p "$repo/dist"
cp "$work"/dist/* "$repo/dist/"
step "package-check ($mode) passed; artifacts in dist/"
