# Sourced by the scripts: finds uv, installing the pinned version from PyPI when absent,
# then syncs the project's environment exactly as uv.lock says.
UV_VERSION="0.13.9"
if command -v uv >/dev/null 2>&1; then
    UV=(uv)
elif python3 -m uv --version >/dev/null 2>&1; then
    UV=(python3 -m uv)
else
    echo "uv not found: installing uv==${UV_VERSION} from PyPI" >&2
    python3 -m pip install --quiet "uv==${UV_VERSION}"
    UV=(python3 -m uv)
fi
