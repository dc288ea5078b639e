#!/usr/bin/env bash
# Build the test image dockerlink-test:latest from files on this machine and load it with
# `docker import` (no registry, no `docker build`), then verify it in containers.
#
#   scripts/lib/build-test-image.sh /path/to/docker.sock     (scripts/engine up calls this)
#
# Needs root (to set ownership), /bin/busybox from busybox-static, and git.
# The image holds:
#   /bin/busybox + a symlink per applet (sh, sleep, httpd, wget, nc, ...); merged /usr like
#     Debian 12 (/bin -> usr/bin, /sbin -> usr/sbin, /lib -> usr/lib, /lib64 -> usr/lib64)
#   git: /usr/bin/git, /usr/lib/git-core, the shared libraries and loader ldd lists for them,
#     /usr/share/git-core/templates
#   users root (0) and admin (1000, home /home/admin with a .gitconfig)
#   /var/www and /var/www/html owned by admin, /var/www/starter.sh
#   /usr/sbin/sshd: a stand-in that just stays up until SIGTERM/SIGINT
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
mapfile -t elves < <(elf_files "$GIT" /usr/bin/git-shell "$GIT_EXEC_PATH"/*)
# ldd lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux... (0x...)"
mapfile -t libs < <(
    for f in "${elves[@]}"; do ldd "$f"; done |
        awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u
)
((${#libs[@]})) || die "ldd found no libraries for git"
for lib in "${libs[@]}"; do
    # keep the path ldd printed (through the image's /lib -> usr/lib links), with the content
    # of the file it resolves to
    target="$ROOT/usr${lib#/usr}"
    mkdir -p "$(dirname "$target")"
    cp -L "$lib" "$target"
done
log "git: ${#elves[@]} programs, ${#libs[@]} libraries"

# --- users
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
admin:x:1000:1000:admin:/home/admin:/bin/sh
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
admin:x:1000:
EOF
cat >"$ROOT/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
admin:*:19000:0:99999:7:::
EOF
chmod 640 "$ROOT/etc/shadow"
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

# --- /usr/sbin/sshd stand-in: stays up, exits 0 promptly on TERM or INT
cat >"$ROOT/usr/sbin/sshd" <<'EOF'
#!/bin/sh
# dockerlink-test image: not a real sshd. Accepts and ignores any options (-D ...),
# stays in the foreground, and exits 0 on SIGTERM or SIGINT.
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; exit 0' TERM INT
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

log "verifying: users, ownership, applets, sshd stand-in"
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

cid="$(docker run -d "$IMAGE" /usr/sbin/sshd -D)"
sleep 0.5
t0=$SECONDS
docker stop -t 10 "$cid" >/dev/null
code="$(docker inspect "$cid" --format '{{.State.ExitCode}}')"
docker rm -f "$cid" >/dev/null
((SECONDS - t0 <= 3)) || fail "sshd stand-in took $((SECONDS - t0))s to stop"
[[ "$code" == 0 ]] || fail "sshd stand-in exited with $code on SIGTERM"

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
