#!/usr/bin/env bash
# Brings up the whole service on this machine against a private MariaDB, in the foreground:
#   bash packaging/run-private.sh [MOUNTPOINT]
# Installs what is missing (.ci/install, as CI does), builds vfsserver, starts mariadbd on a
# free loopback port with its data in the state directory, writes vs_conf.xml there and runs
# vfsserver, which mounts at MOUNTPOINT (default: <state>/mnt; relative to the current
# directory). `cd` into it from another shell.
#
# Stop with Ctrl-C or `kill -TERM <pid of this script>`: the server saves open files and
# unmounts, then MariaDB shuts down, and the script exits with the server's status (0).
# Data stays in the state directory for the next run.
#
# The private MariaDB lets its administrator (the account named after the user running the
# script) in over its socket by unix_socket authentication only, and the catalog user
# (vsadmin, over loopback TCP) with a new random password each run, kept only in the 0600
# vs_conf.xml, and with only the privileges the catalog needs on CatalogDb.
#
# State directory: $VS_PRIVATE_DIR, default target/vs-private in this repository. It holds
# the database, its socket and the config with the password: created with mode 700 if
# missing; an existing one must be owned by the user running the script and have mode 700
# (it is never changed).
# VS_VFSSERVER=/path/to/vfsserver runs that binary instead of building one.
# VS_CACHE_FREE_LEAST_SIZE sets CacheFreeLeastSize (default 2G, as in the server): writes
# fail with ENOSPC when they would leave less than that free on the state directory's disk.
set -euo pipefail

# A signal ignored when a non-interactive shell starts cannot be trapped (POSIX): started in
# the background of another script (`cmd &` without job control ignores SIGINT for cmd and
# everything it starts), the INT trap below would silently do nothing and Ctrl-C or
# `kill -INT` would be ignored. Start again with SIGINT and SIGTERM at their defaults.
ignored=$(sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/$$/status")
if [ -z "${VS_PRIVATE_SIGNALS_RESET:-}" ] && ((0x${ignored:-0} & (1 << 1 | 1 << 14))); then
  VS_PRIVATE_SIGNALS_RESET=1 exec env --default-signal=INT,TERM "$BASH" "${BASH_SOURCE[0]}" "$@"
fi
unset VS_PRIVATE_SIGNALS_RESET

die() {
  echo "run-private.sh: $*" >&2
  exit 1
}

# Resolve paths against the caller's directory before changing it.
mountpoint=
[ -z "${1:-}" ] || mountpoint=$(realpath -m -- "$1")
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state=$(realpath -m -- "${VS_PRIVATE_DIR:-$repo/target/vs-private}")
mountpoint=${mountpoint:-$state/mnt}
cd "$repo"

# Created private; an existing directory is never changed, only checked.
if [ ! -e "$state" ] && [ ! -L "$state" ]; then
  mkdir -p "$(dirname "$state")"
  mkdir -m 700 "$state"
fi
[ -d "$state" ] && [ ! -L "$state" ] || die "$state is not a directory; choose another VS_PRIVATE_DIR"
[ -O "$state" ] || die "$state is not owned by $(id -un); choose another VS_PRIVATE_DIR"
mode=$(stat -c %a "$state")
[ "$mode" = 700 ] ||
  die "$state has mode $mode; it will hold the database password: chmod 700 it or choose another VS_PRIVATE_DIR"

bash .ci/install

vfsserver=${VS_VFSSERVER:-}
if [ -z "$vfsserver" ]; then
  # rustup puts cargo in ~/.cargo/bin, which a non-login shell or sudo may not have on PATH.
  if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust with rustup (https://rustup.rs), open a new shell, run this again"
  cargo build --release --example vfsserver
  vfsserver=$repo/target/release/examples/vfsserver
fi
[ -x "$vfsserver" ] || die "$vfsserver is not an executable"
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
[ -x "$mariadbd" ] || die "mariadbd not found (package mariadb-server; .ci/install installs it)"

free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || {
      echo "$p"
      return
    }
  done
}
port=$(free_port)
user_args=()
[ "$(id -u)" -ne 0 ] || user_args=(--user=root)
# The database's administrator: the account named after the user running this script,
# which logs in over the socket (in the private state directory) by unix_socket
# authentication only, as that user; never over TCP, never with a password.
admin=$(id -un)
[[ $admin =~ ^[A-Za-z0-9._-]+$ ]] || die "user name $admin cannot name a database account"
mkdir -p "$state/cache"
if [ ! -d "$state/data/mysql" ]; then
  # Its own tmpdir, as for mariadbd below: a MariaDB server starting deletes every "#sql*"
  # file in its tmpdir, so two of them bootstrapping in /tmp at once (two runs, or tests)
  # delete each other's temporary tables ("Unknown table 'mysql.tmp_user_sys'").
  mariadb-install-db --no-defaults --datadir="$state/data" --auth-root-authentication-method=socket \
    --auth-root-socket-user="$admin" --skip-test-db --tmpdir="$state" "${user_args[@]}" \
    >"$state/install.log" 2>&1 ||
    die "mariadb-install-db failed; see $state/install.log"
fi

db_pid=
vs_pid=
stop_all() {
  # Server first (it saves open files through the database), then the database.
  if [ -n "$vs_pid" ] && kill -0 "$vs_pid" 2>/dev/null; then
    kill -TERM "$vs_pid" 2>/dev/null || true
    wait "$vs_pid" 2>/dev/null || true
  fi
  if [ -n "$db_pid" ] && kill -0 "$db_pid" 2>/dev/null; then
    echo "stopping the private MariaDB"
    kill -TERM "$db_pid" 2>/dev/null || true
    wait "$db_pid" 2>/dev/null || true
  fi
}
trap stop_all EXIT

# Job control gives both background processes their own process groups, so Ctrl-C reaches
# only this script, which then stops them in order.
set -m
# Not a systemd service of its own: readiness messages belong to vfsserver alone.
env -u NOTIFY_SOCKET "$mariadbd" --no-defaults --datadir="$state/data" --port="$port" \
  --bind-address=127.0.0.1 --socket="$state/mysqld.sock" --pid-file="$state/mysqld.pid" \
  --skip-log-bin --skip-name-resolve --innodb-buffer-pool-size=64M --tmpdir="$state" \
  "${user_args[@]}" 2>"$state/mariadb.log" &
db_pid=$!
set +m

# Everything the script asks the database goes through the socket as the administrator.
sql() {
  mariadb --no-defaults --socket="$state/mysqld.sock" -u"$admin" "$@"
}
ready_by=$((SECONDS + 60))
until sql -e 'SELECT 1' >/dev/null 2>&1; do
  kill -0 "$db_pid" 2>/dev/null || die "mariadbd exited during start-up; see $state/mariadb.log"
  [ "$SECONDS" -lt "$ready_by" ] ||
    die "cannot log in to the private MariaDB as $admin over $state/mysqld.sock within 60 s" \
      "(see $state/mariadb.log); a data directory made by another user or an older version" \
      "of this script may not let $admin in: remove $state/data to start afresh"
  sleep 0.2
done

# The privileges the catalog user needs on its database: the same list as
# valuestor::meta::mysql::privileges::NEEDED (tests/packaging.rs compares them).
catalog_privileges="SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE ROUTINE, ALTER ROUTINE, EXECUTE"
# A new random password for the catalog user on every run. It goes to mariadb on stdin and
# into the 0600 config, never onto a command line or into a log; here-documents are
# written below the private state directory.
export TMPDIR=$state
password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
rm -f "$state/db.password" # the password file of earlier versions
# Only the administrator (unix_socket), MariaDB's own mariadb.sys and root@localhost
# (unix_socket, made by mariadb-install-db) remain; everything else, including accounts
# an earlier version made (root over TCP without a password, a catalog user with ALL on
# its database), is dropped, and the catalog user made again with only what it needs.
accounts=$(sql -N -e "SELECT CONCAT(QUOTE(User), '@', QUOTE(Host)) FROM mysql.global_priv
  WHERE NOT (Host = 'localhost' AND User IN ('root', 'mariadb.sys', '$admin'))")
{
  echo "ALTER USER '$admin'@'localhost' IDENTIFIED VIA unix_socket;"
  while IFS= read -r account; do
    [ -z "$account" ] || echo "DROP USER $account;"
  done <<<"$accounts"
  cat <<SQL
CREATE DATABASE IF NOT EXISTS CatalogDb;
CREATE USER 'vsadmin'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT $catalog_privileges ON CatalogDb.* TO 'vsadmin'@'127.0.0.1';
SQL
} | sql || die "cannot set up the catalog user in the private MariaDB"
(
  umask 077
  cat >"$state/vs_conf.xml" <<XML
<VSConf>
  <DatabaseHost>127.0.0.1</DatabaseHost>
  <DatabasePort>$port</DatabasePort>
  <DatabaseUser>vsadmin</DatabaseUser>
  <DatabasePassword>$password</DatabasePassword>
  <DatabaseName>CatalogDb</DatabaseName>
  <DatabaseMaxPoolSize>4</DatabaseMaxPoolSize>
  <DatabaseInitialPoolSize>1</DatabaseInitialPoolSize>
  <DatabaseTimeout>10</DatabaseTimeout>
  <MountPoint>$mountpoint</MountPoint>
  <CacheFolder>$state/cache</CacheFolder>
  <AdminSocket>$state/vsadmin.sock</AdminSocket>
  <CacheFreeLeastSize>${VS_CACHE_FREE_LEAST_SIZE:-2G}</CacheFreeLeastSize>
</VSConf>
XML
)
chmod 600 "$state/vs_conf.xml"
unset password

echo "mounting at $mountpoint (database on 127.0.0.1:$port); stop with Ctrl-C or kill -TERM $$"
interrupted=
trap 'interrupted=1; kill -TERM "$vs_pid" 2>/dev/null || true' INT TERM
set -m
RUST_LOG="${RUST_LOG:-info}" "$vfsserver" --config "$state/vs_conf.xml" &
vs_pid=$!
set +m
while :; do
  interrupted=
  status=0
  wait "$vs_pid" || status=$?
  # A trapped signal makes `wait` return early (status above 128) while the server may
  # still be stopping: wait again for its real exit status.
  if [ -n "$interrupted" ] && [ "$status" -gt 128 ]; then
    if kill -0 "$vs_pid" 2>/dev/null; then
      continue
    fi
    again=0
    wait "$vs_pid" 2>/dev/null || again=$?
    [ "$again" -eq 127 ] || status=$again
  fi
  break
done
vs_pid=
trap - INT TERM
echo "vfsserver exited with status $status"
exit "$status"
