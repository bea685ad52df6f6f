# Sourced by scripts/demo.sh and scripts/test.sh: install what callcenterd
# needs on a fresh Debian 12 machine, idempotently.
#   - apt: debootstrap (sandbox Asterisk chroot), systemd (systemd-analyze verify),
#          python3-venv
#   - .venv with the package and its test + bench extras
need_apt=()
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: not root, cannot install ${need_apt[*]} (the sandbox Asterisk needs root anyway)" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import callcenterd, pytest, pytest_asyncio, hypothesis, panoramisk' >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,bench]'
  touch .venv/.installed
fi
