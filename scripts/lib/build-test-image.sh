#!/usr/bin/env bash
# Build the test image dockerlink-test:latest from files on this machine and load it with
# `docker import` (no registry, no `docker build`), then verify it in containers.
#
#   scripts/lib/build-test-image.sh /path/to/docker.sock     (scripts/engine up calls this)
#
# Needs root (to set ownership), /bin/busybox from busybox-static, git, and dropbear from
# dropbear-bin (dropbear, dropbearkey, and dbclient for the check).
# The image holds:
#   /bin/busybox + a symlink per applet (sh, sleep, httpd, wget, nc, ...); merged /usr like
#     Debian 12 (/bin -> usr/bin, /sbin -> usr/sbin, /lib -> usr/lib, /lib64 -> usr/lib64)
#   git: /usr/bin/git, /usr/lib/git-core, the shared libraries and loader ldd lists for them,
#     /usr/share/git-core/templates
#   dropbear: /usr/sbin/dropbear and its shared libraries, host keys (ed25519, ecdsa, rsa) made
#     at build time in /etc/dropbear (every container of the image shares them: a test image;
#     dropbear offers RSA signatures whatever keys it holds, so an RSA key must be there)
#   users root (0, no password, no SSH login) and admin (1000, home /home/admin with a
#     .gitconfig; SSH password: dockerlink-test, see TEST_ADMIN_PASSWORD)
#   /var/www and /var/www/html owned by admin, /var/www/starter.sh
#   /usr/sbin/sshd: runs dropbear in the foreground on port 22 (password login), whatever
#     sshd options it is given (-D ...), and exits 0 on SIGTERM/SIGINT; if dropbear cannot run
#     it stays up anyway until signalled, as a container's main process must
# Config: PATH, WORKDIR /var/www/html, CMD ["/bin/sh"]. The image's comment says
# "dockerlink-test rev=<hash of this script>", so `engine up` rebuilds it when this script
# changes. (Not a LABEL: containers inherit image labels, and tests compare labels exactly.)
set -euo pipefail

IMAGE="dockerlink-test:latest"
SOCK="${1:-}"
SOCK="${SOCK#unix://}"
[[ -n "$SOCK" ]] || { echo "usage: $0 DOCKER_SOCKET" >&2; exit 2; }
[[ -S "$SOCK" ]] || { echo "$0: $SOCK is not a socket" >&2; exit 2; }
REV="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
# The SSH password of admin in the test image (tests of the SSH bridge log in with it).
TEST_ADMIN_PASSWORD="dockerlink-test"

log() { printf '[build-test-image] %s\n' "$*" >&2; }
die() { printf '[build-test-image] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x /usr/bin/docker ]]; then DOCKER_BIN=/usr/bin/docker; else DOCKER_BIN="$(command -v docker)"; fi
docker() { timeout 300 "$DOCKER_BIN" -H "unix://$SOCK" "$@"; }

[[ "$(id -u)" == 0 ]] || die "must run as root (the image's files need their owners)"
[[ -x /bin/busybox ]] || die "/bin/busybox missing: apt-get install busybox-static"
if ldd /bin/busybox >/dev/null 2>&1; then
    die "/bin/busybox is dynamically linked: apt-get install busybox-static"
fi
GIT="$(command -v git)" || die "git missing: apt-get install git"
GIT="$(readlink -f "$GIT")"
GIT_EXEC_PATH="$(git --exec-path)"
DROPBEAR=/usr/sbin/dropbear
[[ -x "$DROPBEAR" && -x /usr/bin/dropbearkey && -x /usr/bin/dbclient ]] ||
    die "dropbear missing: apt-get install dropbear-bin"

START=$SECONDS
WORK="$(mktemp -d /tmp/dockerlink-image.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"

log "assembling the root filesystem in $ROOT"
mkdir -p "$ROOT"/usr/{bin,sbin,lib,lib64,share} "$ROOT"/{etc,root,home/admin,var/www/html,tmp,dev,proc,sys,run}
ln -s usr/bin "$ROOT/bin"
ln -s usr/sbin "$ROOT/sbin"
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"
chmod 1777 "$ROOT/tmp"
chmod 700 "$ROOT/root"

# --- busybox and its applets (each a symlink in /bin, except where a file already exists)
cp /bin/busybox "$ROOT/usr/bin/busybox"
while IFS= read -r applet; do
    [[ -n "$applet" && ! -e "$ROOT/usr/bin/$applet" ]] || continue
    ln -s busybox "$ROOT/usr/bin/$applet"
done < <(/bin/busybox --list)

# --- git: binary, helpers, templates, and every shared library they need (plus the loader)
cp -a "$GIT" "$ROOT/usr/bin/git"
for link in git-upload-pack git-receive-pack git-upload-archive; do
    ln -sf git "$ROOT/usr/bin/$link"
done
[[ -x /usr/bin/git-shell ]] && cp -a /usr/bin/git-shell "$ROOT/usr/bin/git-shell"
mkdir -p "$ROOT$GIT_EXEC_PATH"
cp -a "$GIT_EXEC_PATH/." "$ROOT$GIT_EXEC_PATH/"
if [[ -d /usr/share/git-core/templates ]]; then
    mkdir -p "$ROOT/usr/share/git-core"
    cp -a /usr/share/git-core/templates "$ROOT/usr/share/git-core/"
fi

elf_files() {
    local f
    for f in "$@"; do
        [[ -f "$f" && ! -L "$f" ]] || continue
        [[ "$(head -c4 "$f" | tr -d '\0')" == $'\x7fELF' ]] && printf '%s\n' "$f"
    done
}
mapfile -t elves < <(elf_files "$GIT" /usr/bin/git-shell "$GIT_EXEC_PATH"/* "$DROPBEAR")
# ldd lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
mapfile -t libs < <(
    for f in "${elves[@]}"; do ldd "$f"; done |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u
)
((${#libs[@]})) || die "ldd found no libraries for git and dropbear"
for lib in "${libs[@]}"; do
    # keep the path ldd printed (through the image's /lib -> usr/lib links), with the content
    # of the file it resolves to
    target="$ROOT/usr${lib#/usr}"
    mkdir -p "$(dirname "$target")"
    cp -L "$lib" "$target"
done
log "git and dropbear: ${#elves[@]} programs, ${#libs[@]} libraries"

# --- dropbear: the server and its host keys
cp -L "$DROPBEAR" "$ROOT/usr/sbin/dropbear"
mkdir -p "$ROOT/etc/dropbear"
for type in ed25519 ecdsa rsa; do
    /usr/bin/dropbearkey -t "$type" -f "$ROOT/etc/dropbear/dropbear_${type}_host_key" >/dev/null 2>&1 ||
        die "dropbearkey -t $type failed"
done
chmod 700 "$ROOT/etc/dropbear"
chmod 600 "$ROOT"/etc/dropbear/*

# --- users
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
admin:x:1000:1000:admin:/home/admin:/bin/sh
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
tty:x:5:
admin:x:1000:
EOF
admin_hash="$(/bin/busybox mkpasswd -m sha512 "$TEST_ADMIN_PASSWORD")"
cat >"$ROOT/etc/shadow" <<EOF
root:*:19000:0:99999:7:::
admin:$admin_hash:19000:0:99999:7:::
EOF
chmod 640 "$ROOT/etc/shadow"
printf '/bin/sh\n' >"$ROOT/etc/shells"
cat >"$ROOT/home/admin/.gitconfig" <<'EOF'
[user]
	name = admin
	email = admin@dockerlink.test
[init]
	defaultBranch = main
EOF
chown -R 1000:1000 "$ROOT/home/admin"
chmod 755 "$ROOT/home/admin"

# --- web root and the starter script
cat >"$ROOT/var/www/starter.sh" <<'EOF'
#!/bin/sh
# dockerlink-test image: a harmless start-up script
date > /tmp/starter.ran
exit 0
EOF
chmod 755 "$ROOT/var/www/starter.sh"
chown -R 1000:1000 "$ROOT/var/www"

# --- /usr/sbin/sshd: dropbear in the foreground; exits 0 promptly on TERM or INT
cat >"$ROOT/usr/sbin/sshd" <<'EOF'
#!/bin/sh
# dockerlink-test image: sshd is dropbear. Accepts and ignores sshd's options (-D ...) and runs
# dropbear in the foreground on port 22 (password login, no root login, logs to syslog: none
# here, so the container's output stays the start-up commands' own), stopping it and exiting 0
# on SIGTERM or SIGINT. If dropbear cannot run, it says so and stays up until signalled.
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT
/usr/sbin/dropbear -F -w -p 22 \
    -r /etc/dropbear/dropbear_ed25519_host_key -r /etc/dropbear/dropbear_ecdsa_host_key \
    -r /etc/dropbear/dropbear_rsa_host_key &
child=$!
wait "$child"
echo "sshd: dropbear exited with status $?; staying up without it" >&2
while :; do
    sleep 3600 &
    child=$!
    wait "$child"
done
EOF
chmod 755 "$ROOT/usr/sbin/sshd"

# --- tar (numeric owners as set above) and import
log "importing $IMAGE"
old_id="$(docker image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)"
tar --numeric-owner -C "$ROOT" -cf - . |
    docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'WORKDIR /var/www/html' \
        -c 'CMD ["/bin/sh"]' \
        -m "dockerlink-test rev=$REV (scripts/lib/build-test-image.sh)" \
        - "$IMAGE" >/dev/null
new_id="$(docker image inspect "$IMAGE" --format '{{.Id}}')"
if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
fi

# --- verify; on failure drop the tag so the next `engine up` rebuilds
fail() {
    docker image rm "$IMAGE" >/dev/null 2>&1 || true
    die "$*"
}

log "verifying: starter.sh"
out="$(docker run --rm "$IMAGE" sh -c 'sh /var/www/starter.sh && cat /tmp/starter.ran >/dev/null && echo ok' 2>&1)" ||
    fail "starter.sh check failed: $out"
[[ "$out" == ok ]] || fail "starter.sh check printed '$out', expected 'ok'"

log "verifying: users, ownership, applets, sshd"
out="$(docker run --rm -u admin "$IMAGE" sh -c '
    set -e
    [ "$(id -u):$(id -g)" = 1000:1000 ]
    [ "$HOME" = /home/admin ]
    [ "$(pwd)" = /var/www/html ]
    touch /var/www/html/x /var/www/y /tmp/z
    for a in sh sleep cat dd httpd wget nc kill id ls mkdir rm date; do
        command -v "$a" >/dev/null || { echo "missing applet $a"; exit 1; }
    done
    test -x /usr/sbin/sshd
    echo ok' 2>&1)" || fail "user/applet check failed: $out"
[[ "$out" == ok ]] || fail "user/applet check printed '$out'"

log "verifying: SSH password login as admin, then sshd stops on SIGTERM"
cid="$(docker run -d "$IMAGE" /usr/sbin/sshd -D)"
address="$(docker inspect "$cid" --format '{{.NetworkSettings.IPAddress}}')"
ssh_login() {
    # -y -y: no host key check (the container was made just now); HOME: no known_hosts written
    HOME="$WORK" DROPBEAR_PASSWORD="$1" timeout 10 /usr/bin/dbclient -y -y -p 22 \
        "admin@$address" whoami </dev/null 2>"$WORK/ssh.err"
}
deadline=$((SECONDS + 15))
until out="$(ssh_login "$TEST_ADMIN_PASSWORD")" && [[ "$out" == admin ]]; do
    if ((SECONDS >= deadline)); then
        docker rm -f "$cid" >/dev/null
        fail "SSH login as admin at $address:22 failed: $out $(tail -n 2 "$WORK/ssh.err")"
    fi
    sleep 0.2
done
if out="$(ssh_login wrong-password)"; then
    docker rm -f "$cid" >/dev/null
    fail "SSH login as admin succeeded with a wrong password: $out"
fi
t0=$SECONDS
docker stop -t 10 "$cid" >/dev/null
code="$(docker inspect "$cid" --format '{{.State.ExitCode}}')"
docker rm -f "$cid" >/dev/null
((SECONDS - t0 <= 3)) || fail "sshd took $((SECONDS - t0))s to stop"
[[ "$code" == 0 ]] || fail "sshd exited with $code on SIGTERM"

log "verifying: git round trip as admin"
out="$(docker run --rm -u admin "$IMAGE" sh -c '
    set -e
    cd /var/www/html
    git init -q . && echo hello > index.html && git add index.html && git commit -qm site
    mkdir -p /tmp/t && cd /tmp/t
    git init -q --bare origin.git
    git clone -q origin.git a 2>/dev/null
    cd a
    echo one > f && git add f && git commit -qm one && git push -q origin main
    cd .. && git clone -q origin.git b && cd b
    git checkout -q -b feature && echo two > g && git add g && git commit -qm two
    git push -q origin feature && git checkout -q main
    cd ../a && echo three >> f && git commit -qam three && git push -q origin main
    cd ../b && git pull -q && git fetch -q origin
    [ "$(git log -1 --format=%s)" = three ]
    git branch -a | grep -q "remotes/origin/feature"
    git checkout -q feature && [ -f g ]
    [ "$(git config user.name)" = admin ]
    echo ok' 2>&1)" || fail "git round trip failed: $out"
[[ "$out" == ok ]] || fail "git round trip printed '$out'"

log "$IMAGE ready ($new_id, $((SECONDS - START))s)"
