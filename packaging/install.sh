#!/usr/bin/env bash
# Installs vfsserver as the systemd service vs.service on this host (as root):
#   bash packaging/install.sh
# Builds the release binary if cargo is available (else uses target/release/examples/vfsserver,
# or VS_VFSSERVER=/path/to/vfsserver), then installs
#   /usr/sbin/vfsserver                                  ExecStart of vs.service
#   /usr/bin/vsadmin                                     the archive tier's admin command
#                                                        (VS_VSADMIN=/path, else next to vfsserver)
#   /etc/vs/vs_conf.xml                                  the sample, only if none exists (mode 600)
#   /etc/systemd/system/vs.service                       the unit
#   /etc/systemd/system/vs.service.d/memory-limit.conf   its limits
#   /usr/share/doc/valuestor/README.md                   Documentation= of the unit
# and prints the next steps. DESTDIR=DIR installs below DIR instead (packages, tests).
set -euo pipefail

die() {
  echo "install.sh: $*" >&2
  exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${DESTDIR:-}
binary=${VS_VFSSERVER:-}
if [ -z "$binary" ]; then
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
  fi
  if command -v cargo >/dev/null 2>&1; then
    (cd "$repo" && cargo build --release --example vfsserver --example vsadmin)
  fi
  binary=$repo/target/release/examples/vfsserver
  [ -x "$binary" ] || die "no $binary and no cargo to build it: install Rust with rustup \
(https://rustup.rs) or run 'cargo build --release --example vfsserver' as a user that has it"
fi
[ -x "$binary" ] || die "$binary is not an executable"

install -D -m 755 "$binary" "$dest/usr/sbin/vfsserver"
vsadmin=${VS_VSADMIN:-$(dirname "$binary")/vsadmin}
if [ -x "$vsadmin" ]; then
  install -D -m 755 "$vsadmin" "$dest/usr/bin/vsadmin"
else
  echo "install.sh: no $vsadmin: vsadmin not installed (cargo build --release --example vsadmin)" >&2
fi
install -D -m 644 "$repo/packaging/vs.service" "$dest/etc/systemd/system/vs.service"
install -D -m 644 "$repo/packaging/vs.service.d/memory-limit.conf" \
  "$dest/etc/systemd/system/vs.service.d/memory-limit.conf"
install -D -m 644 "$repo/README.md" "$dest/usr/share/doc/valuestor/README.md"
if [ -e "$dest/etc/vs/vs_conf.xml" ]; then
  echo "kept the existing $dest/etc/vs/vs_conf.xml"
else
  # Mode 600: the file will hold the database password (or name a file that does).
  install -D -m 600 "$repo/packaging/vs_conf.xml" "$dest/etc/vs/vs_conf.xml"
fi

cat <<EOF
installed vfsserver, vsadmin, vs.service and its limits below ${dest:-/}. Next:
  1. edit $dest/etc/vs/vs_conf.xml: DatabaseHost, DatabasePort, DatabaseUser,
     DatabasePassword or DatabasePasswordFile, DatabaseName, MountPoint, CacheFolder
  2. vfsserver --config /etc/vs/vs_conf.xml --check
  3. systemctl daemon-reload && systemctl enable --now vs
  4. systemctl status vs      (STATUS= says what it is doing; journalctl -u vs for the log)
EOF
