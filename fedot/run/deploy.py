"""A real Flower deployment on this machine: a SuperLink (the model owner's side) and N SuperNodes (data owners).

Unlike ``fedot sim`` there is no Ray and no shared process: each SuperNode is its own ``flower-supernode`` process
with its own node config (``partition-id``, ``num-partitions``, ``cache-dir``, ``data-dir``), it starts a ClientApp
process for each Message, and everything a data owner receives travels through the SuperLink's Fleet API (the
emulator by ``message`` delivery). With ``tls`` a private CA signs the SuperLink's certificate and SuperNodes and
the CLI verify it; with ``auth`` each SuperNode has an EC P-384 key pair, the SuperLink accepts only the registered
public keys (``flwr supernode register``). On several machines the same commands run one per machine:
``docs/deployment.md``. This module is for trying that on one machine and for the tests.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from .launch import SimError, finish, flwr_cli, flwr_env, handoff, prepare, stream

RETRY_S = 10.0  # a restarted SuperNode that stays up this long has been accepted by the SuperLink


def _exited(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(out: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 365) -> dict:
    """A private CA and a SuperLink certificate for ``hosts`` signed by it (``ca.crt``, ``server.pem``,
    ``server.key``); kept when present. What Flower's docs generate with openssl, in Python."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    files = {"ca": out / "ca.crt", "cert": out / "server.pem", "key": out / "server.key"}
    if all(f.exists() for f in files.values()):
        return files
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, issuer, public_key, signer, ca: bool, sans=()):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fedot model owner CA")])
    ca = cert(ca_name, ca_name, ca_key.public_key(), ca_key, True)
    sans = [x509.IPAddress(ipaddress.ip_address(h)) if h.replace(".", "").isdigit() else x509.DNSName(h)
            for h in hosts]
    server = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), ca_name, key.public_key(), ca_key,
                  False, sans)
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
    files["key"].chmod(0o600)
    return files


def make_node_keys(out: Path) -> tuple[Path, Path]:
    """A SuperNode's EC P-384 key pair in OpenSSH format (``flower-supernode --auth-supernode-private-key``;
    the public key is what the owner registers)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private, public = out.with_suffix(".key"), out.with_suffix(".pub")
    if not private.exists():
        key = ec.generate_private_key(ec.SECP384R1())
        out.parent.mkdir(parents=True, exist_ok=True)
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()))
        private.chmod(0o600)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                         serialization.PublicFormat.OpenSSH))
    return private, public


class Deployment:
    """``flower-superlink`` + ``nodes`` x ``flower-supernode`` under ``root`` (its own FLWR_HOME, ports, logs)."""

    CONNECTION = "fedot-deployment"

    def __init__(self, root: str | Path, nodes: int, tls: bool = True, auth: bool = False,
                 data_dir: str | None = None):
        if auth and not tls:
            raise SimError("SuperNode authentication needs TLS (Flower refuses it over an insecure channel): use tls")
        self.root, self.nodes, self.tls, self.auth, self.data_dir = Path(root).resolve(), nodes, tls, auth, data_dir
        self.env = {**flwr_env(), "FLWR_HOME": str(self.root / "flwr-home")}
        self.port = free_port()  # Flower 1.41 serves the Fleet, Control and Runtime APIs on one HTTP(S) port
        self.procs: list[subprocess.Popen] = []
        self.commands: dict[str, list[str]] = {}  # name -> command, for restart()
        self.running: dict[str, subprocess.Popen] = {}

    def node_dir(self, i: int) -> Path:
        return self.root / f"supernode-{i}"

    def _spawn(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.root,
                                start_new_session=True)
        self.procs.append(proc)
        self.commands[name], self.running[name] = cmd, proc

    def kill(self, name: str, group: bool = False) -> None:
        """SIGKILL ``superlink`` or ``supernode-<i>`` as a crash would (no handler runs): the process alone, or
        with ``group`` everything it started too (a SuperNode's ClientApp processes, the SuperLink's ServerApp)."""
        proc = self.running[name]
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()

    def restart(self, name: str, timeout: float = 150.0) -> None:
        """Start a killed process again with its own command: the same port, ``--database``, keys and cache dir.

        Flower 1.41 keeps a SuperNode that vanished without deactivating "online" until it misses two heartbeats
        (2 x 30 s), and refuses to activate it again before that: the restarted process exits with code 305
        ("Failed to activate SuperNode"). So a SuperNode is started again every ``RETRY_S`` until one stays up
        (what a supervisor such as systemd's ``Restart=on-failure`` does on a real machine)."""
        deadline = time.monotonic() + timeout
        while True:
            started = time.monotonic()
            self._spawn(name, self.commands[name])
            if name == "superlink":
                self._wait_for_port(self.port, name)
                return
            if not _exited(self.running[name], RETRY_S):
                return
            time.sleep(max(0.0, RETRY_S - (time.monotonic() - started)))
            if time.monotonic() > deadline:
                raise SimError(f"{name} did not reconnect within {timeout:.0f} s; see {self.root / (name + '.log')}")

    def _connection(self, certs: dict | None) -> None:
        """The CLI's connection to this SuperLink's Control API, in this deployment's FLWR_HOME."""
        home = Path(self.env["FLWR_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        security = f'root-certificates = "{certs["ca"]}"' if certs else "insecure = true"
        (home / "config.toml").write_text(f'[superlink]\ndefault = "{self.CONNECTION}"\n\n'
                                          f'[superlink.{self.CONNECTION}]\n'
                                          f'address = "127.0.0.1:{self.port}"\n{security}\n')

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        certs = make_certificates(self.root / "certificates") if self.tls else None
        self._connection(certs)
        tls = (["--ssl-ca-certfile", str(certs["ca"]), "--ssl-certfile", str(certs["cert"]), "--ssl-keyfile",
                str(certs["key"])] if certs else ["--insecure"])
        self._spawn("superlink", ["flower-superlink", *tls, "--host", "127.0.0.1", "--port", str(self.port),
                                  "--database", str(self.root / "superlink.db"),
                                  *(["--enable-supernode-auth"] if self.auth else [])])
        self._wait_for_port(self.port, "superlink")
        for i in range(self.nodes):
            self._start_node(i, certs)

    def _start_node(self, i: int, certs: dict | None) -> None:
        home = self.node_dir(i)
        config = {"partition-id": i, "num-partitions": self.nodes, "cache-dir": str(home / "cache")}
        if self.data_dir:
            config["data-dir"] = str(self.data_dir)
        auth = []
        if self.auth:
            private, public = make_node_keys(home / "keys" / "supernode")
            self.flwr("supernode", "register", str(public), self.CONNECTION)
            auth = ["--auth-supernode-private-key", str(private)]
        tls = ["--root-certificates", str(certs["ca"])] if certs else ["--insecure"]
        node_config = " ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v}" for k, v in config.items())
        self._spawn(f"supernode-{i}", ["flower-supernode", *tls, "--superlink", f"127.0.0.1:{self.port}",
                                       "--host", "127.0.0.1", "--port", str(free_port()), "--node-config",
                                       node_config, *auth])

    def run(self, sim, cfg, run_dir: Path, verbose: bool = False) -> tuple[str, str]:
        """``flwr run`` of ``sim`` with the checked settings ``cfg`` against this federation; (run id, status)."""
        cmd = [flwr_cli(), "run", str(sim.path), self.CONNECTION, "--stream", *handoff(cfg, run_dir)]
        return stream(cmd, self.env, run_dir, verbose, [self.CONNECTION])

    def flwr(self, *args: str) -> str:
        out = subprocess.run([flwr_cli(), *args], capture_output=True, text=True, env=self.env)
        if out.returncode:
            raise SimError(f"flwr {' '.join(args)} failed: {(out.stdout + out.stderr)[-800:]}")
        return out.stdout

    def _wait_for_port(self, port: int, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.running[name].poll() is not None:
                raise SimError(f"{name} exited at start; see {self.root / (name + '.log')}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise SimError(f"{name} did not open port {port} within {timeout:.0f} s; see {self.root / (name + '.log')}")

    def stop(self) -> None:
        """Each process with what it started (its SuperExec, ClientApp processes): its own process group."""
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the second for whatever outlived the first
            for p in self.procs:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)
            for p in self.procs:
                _exited(p, 15)
        self.procs.clear()

    def __enter__(self) -> Deployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def run_deployed(app: str | Path, root: str | Path, overrides: dict | None = None, tls: bool = True,
                 auth: bool = False, overwrite: bool = False) -> Path:
    """Start the deployment, ``flwr run`` the sim against it, fail unless the run completed, stop everything."""
    overrides = {"wait-for-clients-s": 120.0, **(overrides or {})}  # SuperNodes connect in seconds, not at once
    sim, overrides, cfg, run_dir = prepare(app, overrides, overwrite=overwrite)
    verbose = cfg.data_owner.verbose
    with Deployment(root, cfg.num_clients, tls=tls, auth=auth, data_dir=overrides.get("data-dir")) as deployment:
        print(f"SuperLink and {cfg.num_clients} SuperNodes under {deployment.root} (TLS {'on' if tls else 'off'}, "
              f"SuperNode authentication {'on' if auth else 'off'})", flush=True)
        run_id, status = deployment.run(sim, cfg, run_dir, verbose)
    return finish(run_id, status, run_dir, verbose)
