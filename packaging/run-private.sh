#!/usr/bin/env bash
# Brings up the whole service on this machine against a private MariaDB, in the foreground:
#   bash packaging/run-private.sh [MOUNTPOINT]      (default MOUNTPOINT: /tmp/vs-private/mnt)
# Installs what is missing (same as CI), starts mariadbd on a free port with its data in
# $VS_PRIVATE_DIR (default /tmp/vs-private), writes a vs_conf.xml there, builds and runs
# vfsserver. `cd` into the mount point from another shell. Stop with Ctrl-C (or SIGTERM):
# the server unmounts and the private MariaDB is shut down; data stays for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${VS_PRIVATE_DIR:-/tmp/vs-private}"
mountpoint="${1:-$root/mnt}"
bash .ci/install
mkdir -p "$root" "$root/cache" "$mountpoint"

free_port() {
  local p
  while :; do
    p=$(( 20000 + RANDOM % 30000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
port=$(free_port)
user_args=()
[ "$(id -u)" -ne 0 ] || user_args=(--user=root)
if [ ! -d "$root/data/mysql" ]; then
  mariadb-install-db --no-defaults --datadir="$root/data" --auth-root-authentication-method=normal \
    --skip-test-db "${user_args[@]}" >"$root/install.log" 2>&1
fi
/usr/sbin/mariadbd --no-defaults --datadir="$root/data" --port="$port" --bind-address=127.0.0.1 \
  --socket="$root/mysqld.sock" --pid-file="$root/mysqld.pid" --skip-log-bin --skip-name-resolve \
  --innodb-buffer-pool-size=64M --tmpdir="$root" "${user_args[@]}" 2>"$root/mariadb.log" &
db_pid=$!
stop_db() { kill "$db_pid" 2>/dev/null && wait "$db_pid" 2>/dev/null || true; }
trap stop_db EXIT
for _ in $(seq 1 100); do
  mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done

password_file="$root/db.password"
[ -s "$password_file" ] || (umask 077; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$password_file")
mariadb --no-defaults -uroot -h127.0.0.1 -P"$port" <<SQL
CREATE DATABASE IF NOT EXISTS CatalogDb;
CREATE USER IF NOT EXISTS 'vsadmin'@'127.0.0.1' IDENTIFIED BY '$(cat "$password_file")';
GRANT ALL ON CatalogDb.* TO 'vsadmin'@'127.0.0.1';
SQL
cat >"$root/vs_conf.xml" <<XML
<VSConf>
  <DatabaseHost>127.0.0.1</DatabaseHost>
  <DatabasePort>$port</DatabasePort>
  <DatabaseUser>vsadmin</DatabaseUser>
  <DatabasePasswordFile>$password_file</DatabasePasswordFile>
  <DatabaseName>CatalogDb</DatabaseName>
  <DatabaseMaxPoolSize>4</DatabaseMaxPoolSize>
  <DatabaseInitialPoolSize>1</DatabaseInitialPoolSize>
  <DatabaseTimeout>10</DatabaseTimeout>
  <MountPoint>$mountpoint</MountPoint>
  <CacheFolder>$root/cache</CacheFolder>
</VSConf>
XML
cargo build --release --example vfsserver
echo "mounting at $mountpoint (database on 127.0.0.1:$port); Ctrl-C to stop"
RUST_LOG="${RUST_LOG:-info}" ./target/release/examples/vfsserver --config "$root/vs_conf.xml"
