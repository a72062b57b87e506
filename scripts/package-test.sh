#!/usr/bin/env bash
# The Linux package, installed and used as a user would, then removed without a trace.
#
# Usage: scripts/package-test.sh [PACKAGE.deb [PACKAGE.rpm]]
#   Without arguments it first makes the packages of the debug build (`scripts/package.sh
#   --debug`, reusing what scripts/test.sh built; see there why CI does not package the release
#   build).
#
# 1. The .deb's and .rpm's contents: the four binaries in /usr/bin, the .desktop entry, icons.
#    The installed .desktop entry runs `sandbox-forward-app %u` and claims
#    `x-scheme-handler/sandbox-forward` (links that add a sandbox); once installed, `xdg-mime`
#    names it the scheme's handler.
# 2. `apt-get install ./PACKAGE.deb`: apt resolves the declared dependencies. Every library a
#    binary links is declared (.deb and .rpm), and every library it loads comes from a package
#    the dependencies pull in.
# 3. `sandbox-forward version` reports the package's version.
# 4. The installed app under Xvfb and a private D-Bus: its window comes up, it starts the
#    installed tray process, which answers on the control socket and runs the demo sandbox
#    with the installed agent; "Start at login" writes an autostart entry naming the installed
#    app.
# 5. The installed CLI through real ssh: `ssh-setup` against the installed `sandbox-agent`
#    (token-protected, on 127.0.0.1) writes `ProxyCommand /usr/bin/sandbox-forward …`, and
#    `ssh -F ~/.ssh/config` runs a command in it; the app's tray process finds it ready too.
# 6. `apt-get remove --purge`: every file and directory the package brought is gone, no process
#    of it is left, and the user's own files (the temporary HOME) are all still there.
#
# Runs as root (or through sudo), installs system-wide, and refuses to touch an installation of
# sandbox-forward that it did not make. Everything else happens in a temporary HOME. Every process
# started here is stopped by its PID on exit, also on failure; the package is purged then too.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=lib.sh
. "$here/scripts/lib.sh"

if [ -z "${PACKAGE_TEST_INSIDE:-}" ]; then
    if [ $# -eq 0 ]; then
        # package.sh prints the paths of the packages last.
        list="$(mktemp)"
        "$here/scripts/package.sh" --debug | tee "$list"
        mapfile -t made < <(tail -n 2 "$list")
        rm -f "$list"
        set -- "${made[@]}"
    fi
    # What the checks use: rpm to read the .rpm, xwininfo to see the window, xdg-mime to ask
    # for the link handler. And update-desktop-database, as every desktop has: its dpkg trigger
    # writes the mimeinfo.cache that xdg-mime reads. Without it xdg-mime scans the entries
    # itself, splitting the bundler's "Sandbox Forward.desktop" at the space (it answers
    # "Sandbox", and xdg-open finds no handler).
    need=()
    command -v rpm >/dev/null 2>&1 || need+=(rpm)
    command -v xwininfo >/dev/null 2>&1 || need+=(x11-utils)
    command -v xdg-mime >/dev/null 2>&1 || need+=(xdg-utils)
    command -v update-desktop-database >/dev/null 2>&1 || need+=(desktop-file-utils)
    install_packages ${need[@]+"${need[@]}"}
    exec env PACKAGE_TEST_INSIDE=1 dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" "$0" "$@"
fi

deb="$(realpath "$1")"
rpm="${2:+$(realpath "$2")}"
pkg="$(dpkg-deb -f "$deb" Package)"
version="$(dpkg-deb -f "$deb" Version)"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^.i'; then
    echo "$pkg is installed on this machine already; this test installs and purges it:" \
        "remove it first (apt-get remove --purge $pkg)" >&2
    exit 1
fi

work="$(mktemp -d)"
home="$work/home"
mkdir -p "$home" "$work/pod"
pids=()
installed=""
bins=(sandbox-forward sandbox-forward-app sandbox-forward-tray sandbox-agent)
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 50); do
        local alive=""
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && return 0
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
}
tray_pid() { cat "$home/.config/sandbox/run/tray.pid" 2>/dev/null || true; }
# The PIDs of processes that run a binary of the package with this test's HOME.
package_pids() {
    local proc exe bin
    for proc in /proc/[0-9]*; do
        exe="$(readlink "$proc/exe" 2>/dev/null || true)"
        for bin in "${bins[@]}"; do
            if [ "${exe% (deleted)}" = "/usr/bin/$bin" ] \
                && tr '\0' '\n' <"$proc/environ" 2>/dev/null | grep -qxF "HOME=$home"; then
                echo "${proc#/proc/}"
            fi
        done
    done
}
cleanup() {
    local status=$?
    local tray strays
    tray="$(tray_pid)"
    # The tray process (started by the app, in its own process group) stops its demo agent;
    # should it fail to, whatever runs a binary of the package with our HOME is stopped too.
    stop_pids ${tray:+"$tray"} ${pids[@]+"${pids[@]}"}
    mapfile -t strays < <(package_pids)
    stop_pids ${strays[@]+"${strays[@]}"}
    if [ -n "$installed" ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get remove --purge -y -qq -o DPkg::Lock::Timeout=600 "$pkg" >/dev/null 2>&1 || true
    fi
    if [ "$status" -ne 0 ]; then
        echo "--- app log"; tail -n 30 "$work/app.log" 2>/dev/null || true
        echo "--- agent log"; tail -n 20 "$work/agent.log" 2>/dev/null || true
        echo "--- demo agent log"; tail -n 20 "$home/.config/sandbox/demo/agent.log" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. What is in the packages.
# (Paths as dpkg lists them once installed: absolute, no trailing slash.)
dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's#^\.\?/\?#/#; s#/$##' | grep -vx '/' >"$work/deb-contents"
for bin in "${bins[@]}"; do
    grep -qx "/usr/bin/$bin" "$work/deb-contents" || fail "the .deb lacks /usr/bin/$bin"
done
grep -q '^/usr/share/applications/.*\.desktop$' "$work/deb-contents" || fail "the .deb has no .desktop entry"
grep -q '^/usr/share/icons/hicolor/.*/apps/sandbox-forward-app\.png$' "$work/deb-contents" \
    || fail "the .deb has no icons"
echo "ok: $(basename "$deb") holds ${bins[*]} in /usr/bin, the .desktop entry and icons"
echo "    Depends: $(dpkg-deb -f "$deb" Depends)"
if [ -n "$rpm" ]; then
    rpm -qlp "$rpm" >"$work/rpm-contents" 2>/dev/null
    for bin in "${bins[@]}"; do
        grep -qx "/usr/bin/$bin" "$work/rpm-contents" || fail "the .rpm lacks /usr/bin/$bin"
    done
    grep -q '^/usr/share/applications/.*\.desktop$' "$work/rpm-contents" || fail "the .rpm has no .desktop entry"
    [ "$(rpm -qp --queryformat '%{VERSION}' "$rpm" 2>/dev/null)" = "$version" ] \
        || fail "the .rpm's version is not $version"
    rpm -qp --requires "$rpm" 2>/dev/null | grep -v '^rpmlib(' >"$work/rpm-requires"
    echo "ok: $(basename "$rpm") holds the same binaries and the .desktop entry"
fi

# 2. Install with apt, so that the declared dependencies are what makes it work. Directories
# that exist before are not the package's to remove.
while read -r path; do
    [ -d "$path" ] && echo "$path"
done <"$work/deb-contents" >"$work/dirs-before"
install_deb() { DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "$deb" >/dev/null; }
installed=1
install_deb || { $sudo apt-get update -qq -o DPkg::Lock::Timeout=600 && install_deb; }
dpkg -L "$pkg" >"$work/installed-files"
echo "ok: apt-get installed $pkg $version"

# The dependencies, checked as dpkg-shlibdeps would make them: every library a binary links
# directly (ELF NEEDED) is from a declared dependency (in the .rpm: a declared soname), and every
# library it loads at all comes from a package those pull in.
python3 - "$pkg" "$work/rpm-requires" "${bins[@]}" <<'PY'
import os, re, subprocess, sys
pkg, rpm_requires, bins = sys.argv[1], sys.argv[2], sys.argv[3:]
def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
installed, provides = {}, {}
for row in run("dpkg-query", "-W", "-f", "${Package}\t${Provides}\t${Pre-Depends}\t${Depends}\t${db:Status-Abbrev}\n").splitlines():
    name, provided, pre, deps, status = row.split("\t")
    if status.startswith("ii"):
        installed[name] = f"{pre},{deps}"
        provides[name] = set(re.findall(r"[a-z0-9][a-z0-9+.-]*", re.sub(r"\([^)]*\)", "", provided)))
def names(field):
    for alternative in field.split(","):
        for choice in alternative.split("|"):
            choice = re.sub(r"\([^)]*\)|\[[^]]*\]|:any", "", choice).strip()
            if choice:
                yield choice
def real(name):
    return [name] if name in installed else [p for p, virtual in provides.items() if name in virtual]
declared = set(names(installed[pkg]))
closure, todo = set(), [pkg]
while todo:
    for package in real(todo.pop()):
        if package not in closure:
            closure.add(package)
            todo.extend(names(installed[package]))
def owners(path):
    for candidate in (path, os.path.realpath(path), path.replace("/lib/", "/usr/lib/", 1)):
        found = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if found.returncode == 0:
            return {o.split(":")[0] for o in found.stdout.splitlines()[0].rsplit(": ", 1)[0].split(", ")}
    return set()
requires = open(rpm_requires).read().split() if os.path.exists(rpm_requires) else None
problems = []
for binary in bins:
    path = f"/usr/bin/{binary}"
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", run("readelf", "-d", path))
    loaded = dict(re.findall(r"^\s*(\S+) => (/\S+)", run("ldd", path), re.M))
    for soname in needed:
        if soname.startswith("ld-linux"):
            continue  # the dynamic loader: part of libc6 / glibc, as libc.so.6
        ours = owners(loaded[soname])
        if not any(o in declared or provides.get(o, set()) & declared for o in ours):
            problems.append(f"{binary} links {soname} ({', '.join(sorted(ours))}), not among the .deb's Depends")
        if requires is not None and f"{soname}()(64bit)" not in requires and soname not in requires:
            problems.append(f"{binary} links {soname}, not among the .rpm's requirements")
    for soname, lib in loaded.items():
        if not owners(lib) & closure:
            problems.append(f"{binary} loads {lib} ({', '.join(sorted(owners(lib))) or 'no package'}), which no dependency pulls in")
if problems:
    sys.exit("FAIL: " + "\n  ".join(sorted(set(problems))))
print(f"ok: every library the binaries link is declared (.deb{'' if requires is None else ' and .rpm'}); "
      f"all they load comes from the {len(closure)} packages the dependencies pull in")
PY

# 3. The version.
got="$(/usr/bin/sandbox-forward version)"
[ "$got" = "sandbox-forward $version" ] || fail "sandbox-forward version says '$got', the package is $version"
echo "ok: $got"

# 4. The app, as a user starts it from the menu entry, in a new HOME: it offers the demo
# sandbox.
export HOME="$home" SANDBOX_FORWARD_TOKEN_STORE=file
desktop_entry="$(grep -m1 '^/usr/share/applications/.*\.desktop$' "$work/installed-files")"
exec_line="$(grep -m1 '^Exec=' "$desktop_entry")"
# "%u": a sandbox-forward:// link the desktop hands over becomes the app's argument (the menu
# passes none), and the entry claims the scheme, so a dashboard's link opens the Add form.
[ "${exec_line#Exec=}" = "sandbox-forward-app %u" ] || fail "the .desktop entry runs '${exec_line#Exec=}'"
grep -qx 'MimeType=x-scheme-handler/sandbox-forward;' "$desktop_entry" \
    || fail "the .desktop entry does not claim sandbox-forward:// links: $(grep '^MimeType=' "$desktop_entry" || echo no MimeType line)"
echo "ok: $(basename "$desktop_entry") runs sandbox-forward-app %u and handles x-scheme-handler/sandbox-forward"
# What a browser or xdg-open asks before it hands a link on: the installed entry is the handler.
handler="$(xdg-mime query default x-scheme-handler/sandbox-forward)"
[ "$handler" = "$(basename "$desktop_entry")" ] \
    || fail "xdg-mime names '$handler' the handler of sandbox-forward:// links, not $(basename "$desktop_entry")"
echo "ok: xdg-mime query default x-scheme-handler/sandbox-forward: $handler"
SANDBOX_FORWARD_LOG=info sandbox-forward-app >"$work/app.log" 2>&1 &
app=$!
pids+=("$app")
control() {
    python3 - "$home/.config/sandbox/run/control.sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
answer = b""
while not answer.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    answer += chunk
outcome = json.loads(answer)
if "Ok" not in outcome:
    sys.exit(f"the app refused: {outcome}")
print(json.dumps(outcome["Ok"]["snapshot"]))
PY
}
window=""
for _ in $(seq 300); do
    kill -0 "$app" 2>/dev/null || fail "the app exited: $(tail -n 5 "$work/app.log")"
    window="$(xwininfo -root -tree | grep -F '"Sandbox Forward"' || true)"
    [ -n "$window" ] && [ -n "$(tray_pid)" ] && break
    sleep 0.1
done
[ -n "$window" ] || fail "no window 'Sandbox Forward' appeared within 30 s"
tray="$(tray_pid)"
[ -n "$tray" ] || fail "the app did not start the tray process"
[ "$(readlink "/proc/$tray/exe")" = /usr/bin/sandbox-forward-tray ] \
    || fail "the tray process is $(readlink "/proc/$tray/exe"), not /usr/bin/sandbox-forward-tray"
echo "ok: the window is up (pid $app) and the tray process /usr/bin/sandbox-forward-tray runs (pid $tray)"
demo=""
for _ in $(seq 100); do
    demo="$(control '{"kind":"snapshot"}' | python3 -c '
import json, sys
for s in json.load(sys.stdin)["sandboxes"]:
    if s["demo"] and s["status"]["health"] in ("notConnected", "ready"):
        print(s["settings"]["name"])')"
    [ -n "$demo" ] && break
    sleep 0.1
done
[ -n "$demo" ] || fail "the demo sandbox did not come up: $(control '{"kind":"snapshot"}')"
agent_exe=""
for child in $(cat "/proc/$tray/task/"*/children 2>/dev/null); do
    agent_exe="$(readlink "/proc/$child/exe" || true)"
    [ "$agent_exe" = /usr/bin/sandbox-agent ] && break
done
[ "$agent_exe" = /usr/bin/sandbox-agent ] || fail "the demo sandbox does not run /usr/bin/sandbox-agent"
echo "ok: the demo sandbox '$demo' answers, served by /usr/bin/sandbox-agent"
prefs="$(control '{"kind":"snapshot"}' | python3 -c '
import json, sys
p = json.load(sys.stdin)["preferences"]; p["startAtLogin"] = True
print(json.dumps({"kind": "setPreferences", "preferences": p}))')"
control "$prefs" >/dev/null
autostart="$home/.config/autostart/Sandbox Forward.desktop"
[ -f "$autostart" ] || fail "Start at login wrote no $autostart"
grep -Eq '^Exec=.*/usr/bin/sandbox-forward-app.* --background' "$autostart" \
    || fail "the autostart entry runs $(grep '^Exec=' "$autostart")"
echo "ok: Start at login: $(grep '^Exec=' "$autostart")"

# 5. The CLI through real ssh, against the installed agent, while the app runs: its tray
# process sees the new sandbox ready.
head -c 32 /dev/urandom | base64 | tr -d '/+=' >"$work/token"
chmod 0600 "$work/token"
/usr/bin/sandbox-agent --api-addr 127.0.0.1:0 --workspace "$work/pod" --token-file "$work/token" \
    >"$work/agent.out" 2>"$work/agent.log" &
pids+=($!)
line=""
for _ in $(seq 200); do
    line="$(head -n 1 "$work/agent.out")"
    [ -n "$line" ] && break
    sleep 0.1
done
url="${line#listening on }"
[[ "$url" == http://127.0.0.1:* ]] || fail "the agent said '$line'"
/usr/bin/sandbox-forward ssh-setup pkgtest --server "$url" --bearer-file "$work/token" >"$work/setup.log"
grep -Eq "ProxyCommand '?/usr/bin/sandbox-forward'? proxy --ssh --sandbox pkgtest" "$home/.config/sandbox/ssh_config" \
    || fail "the ssh config does not name /usr/bin/sandbox-forward: $(grep ProxyCommand "$home/.config/sandbox/ssh_config")"
said="$(ssh -F "$home/.ssh/config" -o BatchMode=yes pkgtest 'echo "hello from $(pwd)"')"
[ "$said" = "hello from $work/pod" ] || fail "ssh pkgtest said '$said'"
echo "ok: ssh through ProxyCommand /usr/bin/sandbox-forward reached the agent: $said"
health=""
for _ in $(seq 100); do
    health="$(control '{"kind":"refresh"}' | python3 -c '
import json, sys
print(" ".join(s["status"]["health"] for s in json.load(sys.stdin)["sandboxes"] if s["settings"]["name"] == "pkgtest"))')"
    [ "$health" = ready ] && break
    sleep 0.2
done
[ "$health" = ready ] || fail "the app's tray process finds pkgtest '$health', not ready"
echo "ok: the app's tray process finds pkgtest ready"

# Quit the app as a user does (the window, then the tray process), and check nothing of the
# package still runs.
stop_pids "$app" "$tray" "${pids[@]}"
pids=()
left="$(package_pids)"
[ -z "$left" ] || fail "processes of the package still run after quitting: $left"

# 6. Remove it; nothing of the package may remain, and the user's files must.
find "$home" -type f | sort >"$work/home-before"
$sudo apt-get remove --purge -y -qq -o DPkg::Lock::Timeout=600 "$pkg" >/dev/null
installed=""
dpkg-query -W -f '${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^.i' && fail "$pkg is still installed"
left=()
while read -r path; do
    [ -e "$path" ] || [ -L "$path" ] || continue
    if [ -d "$path" ] && [ ! -L "$path" ]; then
        grep -qxF "$path" "$work/dirs-before" && continue
    fi
    left+=("$path")
done <"$work/installed-files"
[ ${#left[@]} -eq 0 ] || fail "left behind after purge: ${left[*]}"
find "$home" -type f | sort >"$work/home-after"
diff -u "$work/home-before" "$work/home-after" >/dev/null \
    || fail "the user's files changed on removal: $(diff "$work/home-before" "$work/home-after")"
echo "ok: purged; none of its $(wc -l <"$work/installed-files") paths remain, the user's $(wc -l <"$work/home-after") files do"
