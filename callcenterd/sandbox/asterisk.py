"""A real Asterisk 22 from Debian sid packages, in a cached chroot.

Used by the integration tests and by the README's demo ("main job") command::

    with SandboxAsterisk(ami_port=5038) as pbx:
        print(pbx.cli("core show version"))

Asterisk is in Debian unstable, not in bookworm, so the recipe is (see
DESIGN.md "Test assets" and ../shared/fixtures/asterisk-22/README.md):

1. ``debootstrap --variant=minbase sid ROOT MIRROR`` (about 20-30 s), MIRROR
   taken from this machine's own apt sources, never written in the code;
2. ``chroot ROOT apt-get install asterisk asterisk-modules asterisk-config``
   (about 10 s);
3. per instance, render our configs and run ``chroot ROOT asterisk -f``.

ROOT is cached outside the checkout (``/var/cache/callcenterd/asterisk-root``,
or ``$CALLCENTERD_SANDBOX_DIR``) and reused; a marker file written last tells a
finished cache from a half-made one, and a lock file keeps two concurrent
provisioners apart.

Every instance gets its own directory tree inside the chroot
(``/srv/callcenterd/<owner-pid>-<ami-port>/{etc,run,log,spool,lib}``, wired
with ``asterisk -C``), so two pytest sessions and a demo can run side by side
on one cache as long as their AMI ports differ.  Asterisk runs as root
without -U/-G: it drops capabilities, so everything it writes is root-owned.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from callcenterd.pbx.api import check_safe

log = structlog.get_logger(__name__)

ROOT_ENV = "CALLCENTERD_SANDBOX_DIR"
MIRROR_ENV = "CALLCENTERD_DEBIAN_MIRROR"
DEFAULT_ROOT = Path("/var/cache/callcenterd/asterisk-root")
SUITE = "sid"
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-config")
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))

MARKER = ".callcenterd-sandbox.json"  # in ROOT, written last
INSTANCES = "srv/callcenterd"  # in ROOT
PACKAGE_DIRS = ("/etc/asterisk", "/var/lib/asterisk", "/var/log/asterisk",
                "/var/spool/asterisk", "/run/asterisk")
CONF_TEMPLATES = Path(__file__).with_name("conf")
REPO_DIALPLAN = Path(__file__).resolve().parents[2] / "dialplan" / "asterisk"
PRODUCT_EXTENSIONS = "extensions_callcenterd.conf"
# package defaults not copied: pbx_config would read users.conf (deprecated,
# adds a WARNING and sample users to the dialplan)
SKIPPED_DEFAULTS = frozenset({"asterisk.conf", "users.conf"})

PRODUCT_MANAGER = "manager_callcenterd.conf"
# AMI classes of the callcenterd user when dialplan_dir has no
# manager_callcenterd.conf to take them from; why each one: conf/manager.conf
AMI_READ = "system,call,user,dtmf,reporting"
AMI_WRITE = "system,call,originate,reporting"

# timeouts (seconds)
LOCK_TIMEOUT = 900.0  # another process may be provisioning from scratch
DEBOOTSTRAP_TIMEOUT = 900.0
APT_TIMEOUT = 900.0
BOOT_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
CLI_TIMEOUT = 30.0
KILL_GRACE = 5.0
POLL_INTERVAL = 0.1


class SandboxError(RuntimeError):
    """The sandbox Asterisk could not be provisioned, started or reached."""


@dataclass(frozen=True, slots=True)
class AmiCredentials:
    host: str
    port: int
    user: str
    secret: str


# ------------------------------------------------------------------ host checks
def default_root() -> Path:
    """The cached chroot: ``$CALLCENTERD_SANDBOX_DIR`` or the default."""
    return Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


def debian_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str | None:
    """The Debian mirror this machine already uses (not the security one).

    deb822 ``URIs:`` of /etc/apt/sources.list.d/debian.sources first, then the
    first ``deb`` line of /etc/apt/sources.list; ``$CALLCENTERD_DEBIAN_MIRROR``
    overrides both.
    """
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        uri = _mirror_from_deb822(text) if path.suffix == ".sources" else _mirror_from_list(text)
        if uri:
            return uri
    return None


def _mirror_from_deb822(text: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if any(s.endswith("-security") for s in fields.get("suites", "").split()):
            continue
        uris = fields.get("uris", "").split()
        if uris:
            return uris[0]
    return None


def _mirror_from_list(text: str) -> str | None:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = [w for w in words[1:] if not w.startswith("[")]  # drop [options]
        if len(words) >= 2 and not words[1].endswith("-security"):
            return words[0]
    return None


def _is_provisioned(root: Path) -> bool:
    return (root / MARKER).is_file() and (root / "usr/sbin/asterisk").exists()


def sandbox_unavailable_reason(root: Path | None = None) -> str | None:
    """Why this host cannot run the sandbox, or None if it can."""
    root = root or default_root()
    if platform.system() != "Linux":
        return f"the sandbox needs Linux (chroot, proc), this is {platform.system()}"
    if os.geteuid() != 0:
        return "the sandbox needs root (debootstrap, chroot, mount); run the tests with sudo"
    for tool in ("chroot", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if _is_provisioned(root):
        return None
    if shutil.which("debootstrap") is None:
        return f"debootstrap is not installed (apt-get install debootstrap) and {root} is not provisioned"
    if debian_mirror() is None:
        return (f"no Debian mirror found in {', '.join(map(str, APT_SOURCES))}; "
                f"set {MIRROR_ENV}")
    return None


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out on ``host`` (closed again)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------- helpers
def _run(argv: list[str], *, timeout: float, what: str) -> str:
    """Run a host command; SandboxError with its output tail on failure."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"{what}: no result after {timeout:.0f} s") from exc
    except OSError as exc:
        raise SandboxError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise SandboxError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout


@contextlib.contextmanager
def _flock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive advisory lock on ``path``, polled until ``timeout``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SandboxError(f"{path} still locked after {timeout:.0f} s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _mount_points() -> set[str]:
    """Mount points of this mount namespace (octal escapes of mountinfo undone)."""
    points = set()
    with open("/proc/self/mountinfo") as info:
        for line in info:
            raw = line.split()[4]
            points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), raw))
    return points


def _process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (tells a live pid from a reused one);
    None when the process is gone or a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


# ------------------------------------------------------------------- sandbox
class SandboxAsterisk:
    """One Asterisk 22 instance in the cached Debian sid chroot, on loopback."""

    ami_host = "127.0.0.1"
    agi_host = "127.0.0.1"

    def __init__(self, root: Path | None = None, *, ami_port: int = 5038,
                 ami_user: str = "callcenterd", ami_secret: str | None = None,
                 agi_port: int = 4573, dialplan_dir: Path = REPO_DIALPLAN,
                 extra_conf: dict[str, str] | None = None,
                 ami_read: str | None = None, ami_write: str | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.ami_port = int(ami_port)
        self.agi_port = int(agi_port)
        self.ami_user = _conf_word(ami_user, "ami_user")
        self.ami_secret = _conf_word(ami_secret or secrets.token_hex(16), "ami_secret")
        self.dialplan_dir = Path(dialplan_dir)
        # the product's own AMI account classes, so tests exercise the
        # least privileges a real install grants (see _product_ami_account)
        product = _product_ami_account(self.dialplan_dir / PRODUCT_MANAGER)
        self.ami_read = _conf_word(ami_read or product.get("read", AMI_READ), "ami_read")
        self.ami_write = _conf_word(ami_write or product.get("write", AMI_WRITE), "ami_write")
        self.ami_writetimeout = _conf_word(product.get("writetimeout", "1000"), "writetimeout")
        self.extra_conf = dict(extra_conf or {})
        for name in self.extra_conf:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
                raise ValueError(f"extra_conf file name {name!r} must be a plain file name")
        self.instance = f"{os.getpid()}-{self.ami_port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle = None
        self._installed = False

    # ---------------------------------------------------------- paths
    @property
    def instance_dir(self) -> str:
        """The instance's directory as Asterisk sees it (inside the chroot)."""
        return f"/{INSTANCES}/{self.instance}"

    @property
    def host_instance_dir(self) -> Path:
        return self.root / INSTANCES / self.instance

    @property
    def asterisk_conf(self) -> str:
        return f"{self.instance_dir}/etc/asterisk.conf"

    @property
    def log_path(self) -> Path:
        """Console output of ``asterisk -f`` (host path)."""
        return self.host_instance_dir / "console.log"

    @property
    def messages_log_path(self) -> Path:
        return self.host_instance_dir / "log" / "messages.log"

    def master_csv_path(self) -> Path:
        """cdr_csv's Master.csv of this instance (host path)."""
        return self.host_instance_dir / "log" / "cdr-csv" / "Master.csv"

    def queue_log_path(self) -> Path:
        """app_queue's queue_log of this instance (host path)."""
        return self.host_instance_dir / "log" / "queue_log"

    def ami_credentials(self) -> AmiCredentials:
        return AmiCredentials(self.ami_host, self.ami_port, self.ami_user, self.ami_secret)

    def _chroot(self, *argv: str) -> list[str]:
        return ["chroot", str(self.root), *argv]

    # ---------------------------------------------------------- provisioning
    def provision(self) -> None:
        """Make sure the cached chroot holds Asterisk; idempotent, locked."""
        reason = sandbox_unavailable_reason(self.root)
        if reason:
            raise SandboxError(reason)
        with _flock(self._lock_path(), LOCK_TIMEOUT):
            if _is_provisioned(self.root):
                self._ensure_proc()
                return
            started = time.monotonic()
            if self._needs_debootstrap():
                self._debootstrap()
            self._ensure_proc()
            self._install_packages()
            version = _run(self._chroot("asterisk", "-V"), timeout=CLI_TIMEOUT,
                           what="asterisk -V").strip()
            marker = {"suite": SUITE, "packages": list(PACKAGES), "asterisk": version,
                      "provisioned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            tmp = self.root / (MARKER + ".tmp")
            tmp.write_text(json.dumps(marker, indent=2) + "\n")
            tmp.replace(self.root / MARKER)  # last step: the cache is complete
            log.info("sandbox.provisioned", root=str(self.root), asterisk=version,
                     seconds=round(time.monotonic() - started, 1))

    def _lock_path(self) -> Path:
        return self.root.parent / f".{self.root.name}.lock"

    def _needs_debootstrap(self) -> bool:
        # debootstrap removes ROOT/debootstrap/ when it finishes
        complete = (self.root / "usr/bin/apt-get").exists() and not (self.root / "debootstrap").exists()
        if complete:
            return False
        if self.root.exists() and any(self.root.iterdir()):
            self._wipe_half_made_root()
        return True

    def _wipe_half_made_root(self) -> None:
        """Remove an interrupted debootstrap, never anything else."""
        resolved = self.root.resolve()
        if resolved == Path("/") or not (resolved / "debootstrap").is_dir():
            raise SandboxError(f"{resolved} is neither empty nor a debootstrap in progress; "
                               f"refusing to delete it (remove it by hand)")
        log.warning("sandbox.wipe_half_made", root=str(resolved))
        for point in sorted(_mount_points(), reverse=True):  # innermost first
            if point.startswith(f"{resolved}/"):
                _run(["umount", "-l", point], timeout=CLI_TIMEOUT, what=f"umount {point}")
        _run(["rm", "-rf", "--one-file-system", str(resolved)], timeout=APT_TIMEOUT,
             what=f"rm -rf {resolved}")

    def _debootstrap(self) -> None:
        mirror = debian_mirror()
        if mirror is None:
            raise SandboxError(f"no Debian mirror in the apt sources; set {MIRROR_ENV}")
        self.root.mkdir(parents=True, exist_ok=True)
        log.info("sandbox.debootstrap", suite=SUITE, root=str(self.root), mirror=mirror)
        _run(["debootstrap", "--variant=minbase", SUITE, str(self.root), mirror],
             timeout=DEBOOTSTRAP_TIMEOUT, what="debootstrap")

    def _ensure_proc(self) -> None:
        """Mount proc in the chroot once; it stays mounted (shared by every
        instance on this cache, and harmless to the host)."""
        proc = str(self.root.resolve() / "proc")
        if proc not in _mount_points():
            _run(["mount", "-t", "proc", "proc", proc], timeout=CLI_TIMEOUT, what="mount proc")

    def _install_packages(self) -> None:
        log.info("sandbox.apt_install", packages=PACKAGES)
        # a sid snapshot mirror may carry an expired Release file
        _run(self._chroot("apt-get", "-o", "Acquire::Check-Valid-Until=false", "update"),
             timeout=APT_TIMEOUT, what="apt-get update (chroot)")
        # finish a dpkg run an earlier, interrupted provisioning left behind
        _run(self._chroot("env", "DEBIAN_FRONTEND=noninteractive", "dpkg", "--configure", "-a"),
             timeout=APT_TIMEOUT, what="dpkg --configure -a (chroot)")
        _run(self._chroot("env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install",
                          "-y", "-qq", "--no-install-recommends", *PACKAGES),
             timeout=APT_TIMEOUT, what="apt-get install asterisk (chroot)")
        # ROOT/var/run is an absolute symlink to /run: create from inside
        _run(self._chroot("mkdir", "-p", *PACKAGE_DIRS), timeout=CLI_TIMEOUT, what="mkdir")
        _run(self._chroot("chown", "-R", "root:root", *PACKAGE_DIRS), timeout=CLI_TIMEOUT,
             what="chown asterisk dirs")

    # ---------------------------------------------------------- configuration
    def install_config(self) -> None:
        """Write this instance's config tree: package defaults, our templates,
        the product dialplan (``dialplan_dir``), then ``extra_conf``."""
        if not _is_provisioned(self.root):
            raise SandboxError(f"{self.root} is not provisioned; call provision() first")
        self._prune_stale_instances()
        inside = self.instance_dir
        _run(self._chroot("mkdir", "-p", *(f"{inside}/{d}" for d in
                                            ("etc/callcenterd", "run", "log/cdr-csv",
                                             "spool", "lib", "cache"))),
             timeout=CLI_TIMEOUT, what="mkdir instance")
        host = self.host_instance_dir
        (host / "owner.json").write_text(json.dumps(
            {"pid": os.getpid(), "start": _process_start_time(os.getpid())}))
        etc = host / "etc"
        for old in etc.rglob("*"):
            if old.is_file():
                old.unlink()
        # package defaults first (amd.conf, features.conf, indications.conf...)
        for default in (self.root / "etc/asterisk").glob("*.conf"):
            if default.name not in SKIPPED_DEFAULTS:
                shutil.copyfile(default, etc / default.name)
        product = sorted(p for p in self.dialplan_dir.glob("*") if p.is_file()) \
            if self.dialplan_dir.is_dir() else []
        for path in product:
            shutil.copyfile(path, etc / "callcenterd" / path.name)
        values = {
            "INSTANCE_DIR": inside,
            "MODULE_DIR": self._module_dir(),
            "AMI_PORT": str(self.ami_port),
            "AMI_USER": self.ami_user,
            "AMI_SECRET": self.ami_secret,
            "AMI_READ": self.ami_read,
            "AMI_WRITE": self.ami_write,
            "AMI_WRITETIMEOUT": self.ami_writetimeout,
            "AGI_HOST": self.agi_host,
            "AGI_PORT": str(self.agi_port),
            "PRODUCT_INCLUDE": (f"#include callcenterd/{PRODUCT_EXTENSIONS}"
                                if (etc / "callcenterd" / PRODUCT_EXTENSIONS).exists()
                                else f"; no {PRODUCT_EXTENSIONS} in {self.dialplan_dir}"),
        }
        for template in sorted(CONF_TEMPLATES.glob("*.conf")):
            (etc / template.name).write_text(_render(template.read_text(), values, template.name))
        for name, text in self.extra_conf.items():
            (etc / name).write_text(text)
        self._installed = True

    def _module_dir(self) -> str:
        found = sorted(self.root.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise SandboxError(f"no asterisk modules directory under {self.root}/usr/lib")
        return "/" + str(found[0].relative_to(self.root))

    def _prune_stale_instances(self) -> None:
        """Remove instance trees whose owner process is gone (killing their
        Asterisk, matched by pid file and command line, if it still runs)."""
        base = self.root / INSTANCES
        if not base.is_dir():
            return
        for tree in base.iterdir():
            if tree.name == self.instance or not tree.is_dir():
                continue
            try:
                owner = json.loads((tree / "owner.json").read_text())
            except (OSError, ValueError):
                owner = {}
            pid = owner.get("pid")
            if isinstance(pid, int) and _process_start_time(pid) == owner.get("start"):
                continue  # its owner still runs
            self._kill_orphan(tree)
            shutil.rmtree(tree, ignore_errors=True)

    def _kill_orphan(self, tree: Path) -> None:
        try:
            pid = int((tree / "run" / "asterisk.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if f"/{INSTANCES}/{tree.name}/etc/asterisk.conf".encode() not in cmdline:
            return  # pid reused by something else
        log.warning("sandbox.kill_orphan", pid=pid, instance=tree.name)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + KILL_GRACE
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(POLL_INTERVAL)
            if not Path(f"/proc/{pid}").exists():
                return

    # ---------------------------------------------------------- lifecycle
    def start(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Provision if needed, install the config, boot, wait until fully booted."""
        if self.is_running():
            return
        self.provision()  # not counted in timeout: from scratch it takes ~30-60 s
        deadline = time.monotonic() + timeout
        if _port_in_use(self.ami_host, self.ami_port):  # before touching any config
            self._prune_stale_instances()  # an orphan of a killed run may hold it
            if _port_in_use(self.ami_host, self.ami_port):
                raise SandboxError(f"AMI port {self.ami_host}:{self.ami_port} is already in use "
                                   f"(another Asterisk?)")
        self.install_config()
        for stale in ("asterisk.ctl", "asterisk.pid"):  # left by a killed run
            (self.host_instance_dir / "run" / stale).unlink(missing_ok=True)
        self._log_handle = open(self.log_path, "ab")
        log.info("sandbox.start", instance=self.instance, ami_port=self.ami_port,
                 agi_port=self.agi_port, log=str(self.log_path))
        # -f foreground (we keep the Popen), -n no colours in the log, -vvv so
        # Playback/MOH/Goto show up in console.log
        self._proc = subprocess.Popen(
            self._chroot("asterisk", "-C", self.asterisk_conf, "-f", "-n", "-vvv"),
            stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT,
            start_new_session=True)  # a Ctrl-C in the terminal is ours to handle
        try:
            self._wait_booted(deadline)
            self._wait_ami(deadline)
        except BaseException:
            self._terminate()
            raise

    def _wait_booted(self, deadline: float) -> None:
        """Control socket up, then ``core waitfullybooted`` (retried: the
        socket file can exist a moment before Asterisk accepts on it)."""
        ctl = self.host_instance_dir / "run" / "asterisk.ctl"
        while True:
            self._check_alive()
            if ctl.exists():
                try:
                    self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
                    return
                except SandboxError:
                    pass
            if time.monotonic() > deadline:
                raise SandboxError(f"Asterisk did not boot in time; see {self.log_path}:\n"
                                   f"{self._log_tail()}")
            time.sleep(POLL_INTERVAL)

    def _wait_ami(self, deadline: float) -> None:
        """The AMI listener answers with its banner (proves the port is ours)."""
        while True:
            self._check_alive()
            try:
                with socket.create_connection((self.ami_host, self.ami_port), timeout=2) as sock:
                    banner = sock.recv(64)
                if banner.startswith(b"Asterisk Call Manager/"):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SandboxError(f"AMI did not answer on {self.ami_host}:{self.ami_port}; "
                                   f"see {self.log_path}:\n{self._log_tail()}")
            time.sleep(POLL_INTERVAL)

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise SandboxError(f"Asterisk exited (code {code}); see {self.log_path}:\n"
                               f"{self._log_tail()}")

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no console log)"

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """``core stop now``; SIGTERM/SIGKILL if Asterisk lingers."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            with contextlib.suppress(SandboxError):
                self.cli("core stop now", timeout=timeout)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("sandbox.stop_timeout", instance=self.instance)
        self._terminate()
        log.info("sandbox.stopped", instance=self.instance)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def restart_core(self, timeout: float = BOOT_TIMEOUT) -> None:
        """``core restart now`` and wait until the new incarnation is fully booted.

        Asterisk re-execs itself in the same process (main/asterisk.c
        really_quit), so neither the pid nor the control socket's inode tells
        the incarnations apart; a global set just before the restart does.
        """
        token = secrets.token_hex(8)
        self.cli(f"dialplan set global CC_SANDBOX_INCARNATION {token}")
        with contextlib.suppress(SandboxError):  # the CLI link may drop as it execs
            self.cli("core restart now")
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                if token not in self.cli("dialplan show globals", timeout=5):
                    break
            except SandboxError:
                pass  # between incarnations: no control socket yet
            if time.monotonic() > deadline:
                raise SandboxError(f"Asterisk did not come back after core restart; "
                                   f"see {self.log_path}:\n{self._log_tail()}")
            time.sleep(POLL_INTERVAL)
        self._wait_booted(deadline)
        self._wait_ami(deadline)

    # ---------------------------------------------------------- CLI
    def cli(self, command: str, timeout: float = CLI_TIMEOUT) -> str:
        """Run one CLI command (``asterisk -rx``) and return its output."""
        check_safe(command, "CLI command")
        try:
            done = subprocess.run(
                self._chroot("asterisk", "-C", self.asterisk_conf, "-rx", command),
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                check=False)
        except subprocess.TimeoutExpired as exc:
            raise SandboxError(f"CLI {command!r}: no answer after {timeout:.0f} s") from exc
        output = done.stdout + done.stderr
        if done.returncode != 0 or "Unable to connect to remote asterisk" in output:
            raise SandboxError(f"CLI {command!r} failed (exit {done.returncode}): "
                               f"{output.strip()[-500:]}")
        return done.stdout

    # ---------------------------------------------------------- context manager
    def __enter__(self) -> SandboxAsterisk:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return (f"<SandboxAsterisk {self.instance} {state} ami={self.ami_host}:{self.ami_port} "
                f"agi={self.agi_host}:{self.agi_port}>")


def _product_ami_account(path: Path) -> dict[str, str]:
    """read/write/writetimeout of the account in the product's manager snippet."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, sep, value = line.split(";", 1)[0].partition("=")
        key = key.strip().lower()
        if sep and key in ("read", "write", "writetimeout") and value.strip():
            found[key] = value.strip().lstrip(">").strip()  # "read => x" too
    return found


def _conf_word(value: str, what: str) -> str:
    """A value going into an Asterisk config line: no newline, comment or section syntax."""
    check_safe(value, what)
    if not value or re.search(r"[\s;\[\]=]", value):
        raise ValueError(f"{what} must be non-empty, without blanks or ; [ ] =")
    return value


def _render(text: str, values: dict[str, str], name: str) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise SandboxError(f"conf/{name}: unknown placeholders {sorted(set(left))}")
    return text
