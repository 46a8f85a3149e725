#!/usr/bin/env bash
# One-command set-up on Debian (as root): system packages, the .venv, the default image.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(runc runsc busybox-static skopeo umoci podman docker-registry nftables
          python3 python3-venv iproute2 util-linux e2fsprogs time tini gcc libc6-dev
          qemu-system-x86 cpio  # the cgroup v2 test VM (tests/vm)
          postgresql  # the service store's PostgreSQL tests (a throw-away cluster per test run)
          chromium chromium-driver  # the dashboard's browser tests (Selenium, headless)
          redis-server)  # the gateway's dispatch tests (a throw-away redis-server per test)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
if [ -x .venv/bin/sandpool ] && [ -f src/sandpool/images/default_image.py ]; then
  .venv/bin/sandpool images build-default
fi
# The test VM's kernel (Debian's linux-image-amd64), fetched once into .cache/vm/.
.venv/bin/python -c 'from tests.vm.kernel import fetch_kernel; print("setup: VM kernel", fetch_kernel().release)' \
  || echo "setup: WARNING: could not fetch the test VM's kernel; the VM stage of ./test.sh will fail"
echo "setup: done. Try: .venv/bin/sandpool run --pool default -- sh -c 'echo hello from gVisor'"
