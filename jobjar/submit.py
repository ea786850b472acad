"""Submission: write the job in ``limbo/``, then one rename into the jar.

Nothing half-written is ever visible to workers: the limbo file is written
and closed before the rename (close-to-open consistency makes it whole for
other NFS clients), and a failed write removes it again.
"""

from __future__ import annotations

import errno
import os
import stat

from . import direct, faults, files
from . import directives as jjdir
from .config import Config, load
from .errors import JobJarError, SubmitError
from .layout import STATE_DIRS, Jar
from .naming import check_category, check_priority, unique_name
from .states import LIMBO, UNCLAIMED, WAITING

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:  # (no pathlib at run time: see ``write_job``)
    from collections.abc import Callable
    from pathlib import Path

#: Names of the per-job keyword options shared by every submission function
#: (every ``#JJ`` option but the ones ``--array`` sets).
OPTION_NAMES = tuple(o.name for o in jjdir.OPTIONS if o.help is not None)


class PartialSubmitError(SubmitError):
    """Some jobs of an array or a list were submitted, then submission failed.

    ``submitted`` holds their names (they are queued and will run: submit
    only the others again); ``total`` is how many were asked for.
    """

    def __init__(self, message: str, submitted: list[str], total: int,
                 batch: str | None = None) -> None:
        super().__init__(message)
        self.submitted = submitted
        self.total = total
        self.batch = batch


class Batch(list):
    """The names of the jobs of one ``--array`` or ``--from-file`` submission, in order.

    A plain list of names, as before, that also knows its batch id
    (``.batch``): ``wait(batch=names.batch)``, ``cancel_job(batch=...)``.
    """

    def __init__(self, names: list[str], batch: str) -> None:
        super().__init__(names)
        self.batch = batch


#: The letters of a batch id: lowercase and digits without the look-alikes (l, o, 0, 1).
BATCH_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"


def new_batch(jar: Jar) -> str:
    """A new batch id: 8 random letters of ``BATCH_ALPHABET`` (40 bits), unused in this jar.

    Random rather than counted, so that submitters on different nodes need
    no shared counter; 2^40 ids make a clash between two submissions of the
    same moment negligible, and an id whose manifest exists is drawn again.
    """
    while True:
        bits = int.from_bytes(os.urandom(5), "big")
        batch = "".join(BATCH_ALPHABET[(bits >> (5 * i)) & 31] for i in range(8))
        if not os.path.lexists(jar.batch_file(batch)):
            return batch


def _write_manifest(jar: Jar, batch: str, names: list[str]) -> None:
    """Write ``batches/ID``, the names of the batch's jobs, atomically (``files.write_new``)."""
    data = "".join(name + "\n" for name in names).encode("utf-8", "surrogateescape")
    path = jar.batch_file(batch)
    try:
        files.write_new(path, data)
    except FileNotFoundError:  # the first batch of this jar
        files.make_dir(path.parent)
        files.write_new(path, data)


def unique_job_name(priority: int = 0, id: str | None = None) -> str:
    """Return an absolute path in ``limbo/`` that no other job will ever use."""
    config = load()
    jar = Jar.from_config(config)
    name = unique_name(config.node, check_priority(priority), id)
    if not jar.limbo.is_dir():  # the caller will cp into it: the jar must exist
        _ensure(jar)
    return str(jar.limbo / name)


def _options(jar: Jar, extra: dict) -> jjdir.Directives:
    """Validate the keyword options and check that dependencies exist."""
    unknown = set(extra) - set(OPTION_NAMES)
    if unknown:
        raise SubmitError(f"unknown option(s): {', '.join(sorted(unknown))}")
    opts = jjdir.Directives()
    for name, value in extra.items():
        if value is None:
            continue
        if jjdir.BY_NAME[name].names_file and str(value):  # "" stays "" and is refused
            value = os.path.abspath(os.path.expanduser(str(value)))
        opts.set(name, value)
    if opts.dependencies:  # a unique prefix names its job, as in every command
        from .find import resolve

        opts.after = [resolve(dep, jar) for dep in opts.after]
        opts.after_any = [resolve(dep, jar) for dep in opts.after_any]
    _check_dependencies(jar, opts)
    return opts


def _check_dependencies(jar: Jar, opts: jjdir.Directives) -> None:
    """Every job named by ``--after``/``--after-any`` must exist somewhere in the jar."""
    if opts.dependencies:
        from .find import locate

        for dep in opts.dependencies:
            if locate(dep, jar) is None:
                raise SubmitError(f"unknown dependency: no job named {dep!r} in {jar.home}")


def _script(command: str, opts: jjdir.Directives) -> bytes:
    if "\x00" in command:
        raise SubmitError("the command contains a NUL byte")
    if not command.strip():
        raise SubmitError("no command given")
    lines = ["#!/bin/sh", *jjdir.render(opts), direct.script_line(command)]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _read_executable(path: str | os.PathLike) -> bytes:
    """The bytes of a file ``-f`` may submit, or a clear error."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise SubmitError(f"{path}: no such file") from None
    except OSError as exc:
        raise SubmitError(f"{path}: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise SubmitError(f"{path}: is a directory, not an executable file")
    if not stat.S_ISREG(info.st_mode):
        raise SubmitError(f"{path}: not a regular file")
    if not info.st_mode & 0o111 or not os.access(path, os.X_OK):
        raise SubmitError(f"{path}: not executable (chmod +x it first)")
    try:
        with open(path, "rb") as src:
            return src.read()
    except OSError as exc:
        raise SubmitError(f"{path}: cannot read: {exc.strerror}") from None


def _wrap(content: bytes, opts: jjdir.Directives) -> bytes:
    """Add directive lines to a script, or wrap a binary in a small script."""
    lines = jjdir.render(opts)
    if not lines:
        return content
    block = "".join(line + "\n" for line in lines).encode()
    if content.startswith(b"#!"):
        if not content.endswith(b"\n") and b"\n" not in content:
            return content + b"\n" + block
        at = _after_header(content, jjdir.HEAD_BYTES - len(block))
        return content[:at] + block + content[at:]
    # A binary: a script that extracts the bytes after its own text and runs them.
    body = ("#!/bin/sh\n" + "".join(line + "\n" for line in lines)
            + 'prog="$JJ_SCRATCH_DIR/.jj-binary"\n'
            + 'tail -c +@@ "$0" > "$prog" && chmod 700 "$prog" || exit 126\n'
            + 'exec "$prog"\n')
    offset = 0
    while True:  # the offset's own digits change the header's length
        header = body.replace("@@", str(offset)).encode()
        if len(header) + 1 == offset:
            break
        offset = len(header) + 1
    return header + content


def _after_header(content: bytes, limit: int) -> int:
    """Where ``#JJ`` lines go in a script so that they override the script's own.

    Directives are read from the comment block after the ``#!`` line, and a
    later one wins (``--after`` lists add up), so the command line's go at
    the end of that block, as long as they stay inside the part a worker
    reads; otherwise right after the ``#!`` line.
    """
    first = content.find(b"\n") + 1
    at = first
    while at < len(content):
        end = content.find(b"\n", at)
        end = len(content) if end < 0 else end + 1
        line = content[at:end].strip()
        if line and not line.startswith(b"#"):
            break
        at = end
    return at if at <= limit else first


def write_job(content: bytes, priority: int = 0, id: str | None = None,
              category: str | None = None, opts: jjdir.Directives | None = None,
              jar: Jar | None = None, waits: bool | None = None,
              config: Config | None = None,
              attach: Callable[[Jar, str], Path] | None = None) -> str:
    """Write ``content`` as a new job and submit it; return its name.

    Its paths are strings (``Jar.state_path``), not ``pathlib`` objects:
    the plain ``submit_job CMD`` process imports nothing it does not use.
    A job with dependencies (``waits``; by default, whether ``opts`` has
    any) goes to ``waiting/`` instead of the unclaimed jar.  ``attach``
    writes a file the job needs (an INI copy) before the job is written,
    given its name; it is removed again if the submission fails.
    """
    config = config or load()
    jar = jar or Jar.from_config(config)
    priority = check_priority(priority)
    category = check_category(category)
    name = unique_name(config.node, priority, id)
    if len(os.fsencode(name)) > jjdir.MAX_NAME_BYTES:  # no room for results/NAME.yaml
        raise SubmitError(f"the job's name would be longer than {jjdir.MAX_NAME_BYTES} bytes: "
                          "use a shorter identifier")
    if waits is None:
        waits = bool(opts and opts.dependencies)
    target_dir = jar.state_path(WAITING if waits else UNCLAIMED, category)
    limbo_path = jar.state_path(LIMBO, None, name)
    companion = _attach(attach, jar, name) if attach else None
    try:
        _write_limbo(jar, limbo_path, content)
        faults.hit("submit-after-limbo")
        try:
            files.rename_into(limbo_path, f"{target_dir}/{name}")  # a new category: parent's mode
        except OSError as exc:
            _discard(limbo_path)
            raise SubmitError(f"cannot submit into {target_dir}: {exc.strerror}") from None
    except SubmitError:
        if companion is not None:
            _discard(companion)
        raise
    return name


def _attach(attach: Callable[[Jar, str], Path], jar: Jar, name: str) -> Path:
    """Write a job's companion file; a failure is a SubmitError (nothing else was written)."""
    try:
        return attach(jar, name)
    except OSError as exc:
        reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
        raise SubmitError(f"cannot write the job's INI copy in {jar.home}: {reason}") from None


def _write_limbo(jar: Jar, path: str, content: bytes) -> None:
    for attempt in (1, 2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o777)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise SubmitError(f"{jar.limbo}: cannot create the jar's limbo directory") from None
            _ensure(jar)
        except OSError as exc:
            raise SubmitError(f"cannot write a job in {jar.limbo}: {exc.strerror}") from None
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.close(fd)
    except OSError as exc:
        os.close(fd)
        _discard(path)
        reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror
        raise SubmitError(f"cannot write the job in {jar.limbo}: {reason}") from None


def _ensure(jar: Jar) -> None:
    """Create the jar's directories, each with its parent's permission bits.

    Not ``os.makedirs``: with the submitter's ``umask 077`` that would make
    directories the rest of a team cannot use (``files.make_dir``).
    """
    try:
        for name in STATE_DIRS:
            files.make_dir(jar.home / name)
        files.make_dir(jar.worker_home)
    except OSError as exc:
        raise SubmitError(f"cannot create the jar at {jar.home}: {exc.strerror}") from None


def _discard(path: str | os.PathLike) -> None:
    try:
        files.unlink(path)
    except OSError:
        pass


def submit_job(command: str, priority: int = 0, id: str | None = None,
               category: str | None = None, *, array: str | None = None,
               **options) -> str | list[str]:
    """Submit a shell command line as a new job; return the job's name.

    The command is written into a ``#!/bin/sh`` script.  Keyword options
    (``timeout``, ``retries``, ``after``, ``after_any``, ``output``,
    ``error``) become ``#JJ`` directives in the script.  With
    ``array="1-100"`` (Slurm's spelling: ``"1-5,7,10-20:2%4"``, see
    ``array_spec``) one job per index is submitted, each with
    ``JJ_ARRAY_INDEX`` set, and the list of names is returned as a
    ``Batch`` (its ``.batch`` is the batch id).
    """
    config = load()
    jar = Jar.from_config(config)
    opts = _options(jar, options)
    return _submit_each(lambda: _script(command, opts), opts, array, priority, id, category, jar,
                        config=config)


def submit_job_file(path: str | os.PathLike, priority: int = 0, id: str | None = None,
                    category: str | None = None, *, array: str | None = None,
                    **options) -> str | list[str]:
    """Submit a copy of an executable file as a new job; return its name.

    With options, a script gets ``#JJ`` lines after its ``#!`` line and a
    binary is wrapped in a small script that carries them.
    """
    config = load()
    jar = Jar.from_config(config)
    opts = _options(jar, options)
    content = _read_executable(path)
    try:  # the file's own #JJ lines get the same checks as the keywords
        own = jjdir.parse(content[: jjdir.HEAD_BYTES])
    except jjdir.DirectiveError as exc:
        raise SubmitError(f"{path}: {exc}") from None
    _check_dependencies(jar, own)
    waits = bool(own.dependencies or opts.dependencies)
    return _submit_each(lambda: _wrap(content, opts), opts, array, priority, id, category, jar,
                        waits, config)


def submit_ini_file(path: str | os.PathLike, priority: int = 0, id: str | None = None,
                    category: str | None = None, *, array: str | None = None,
                    **options) -> str | list[str]:
    """Submit an fjd-style INI job file; return the job's name (``inijob``).

    The file needs a ``[control]`` section with an ``executable``; a copy is
    kept in the jar (``ini/NAME.ini``) and the job runs ``EXECUTABLE COPY``,
    in the submitter's directory if ``[control]`` says ``workdir: submit``.
    """
    from . import inijob

    config = load()
    jar = Jar.from_config(config)
    opts = _options(jar, options)
    job = inijob.read(path)
    owner = os.geteuid()

    def attach(jar: Jar, name: str) -> Path:
        copy = jar.ini_copy(name)
        inijob.attach(job.data, copy)
        return copy

    return _submit_each(lambda: job.script(jjdir.render(opts), owner), opts, array, priority,
                        id, category, jar, config=config, attach=attach)


def _submit_each(make, opts: jjdir.Directives, array: str | None, priority, id, category,
                 jar: Jar, waits: bool | None = None, config: Config | None = None,
                 attach: Callable[[Jar, str], Path] | None = None) -> str | list[str]:
    """Submit one job, or one per array index (``make`` builds the file each time)."""
    if array is None:
        return _write_all([make], lambda build: write_job(build(), priority, id, category, opts,
                                                          jar, waits, config, attach))[0]
    indexes, cap = array_spec(array)
    opts.batch = new_batch(jar)
    own_after_any = list(opts.after_any)
    done: list[str] = []

    def one(position: int) -> str:
        """Job ``position`` of the array; with a cap, it waits for the job ``cap`` before it."""
        opts.array_index = indexes[position]
        chained = cap is not None and position >= cap
        opts.after_any = own_after_any + ([done[position - cap]] if chained else [])
        name = write_job(make(), priority, id, category, opts, jar, True if chained else waits,
                         config, attach)
        done.append(name)
        return name

    return _write_all(list(range(len(indexes))), one,
                      lambda count: _rest_of_array(indexes[count:], cap), jar=jar,
                      batch=opts.batch)


def _rest_of_array(rest: list[int], cap: int | None) -> str:
    return f"; the rest is --array {format_array(rest, cap)}"


def _write_all(items: list, write_one, rest=None, jar: Jar | None = None,
               batch: str | None = None) -> list[str]:
    """Submit one job per item; if one fails, say exactly which ones were submitted.

    Jobs already submitted stay (workers may be running them): the error is
    a ``PartialSubmitError`` that carries their names and says how many of
    how many, so that a retry submits only the others and nothing runs twice.
    With a ``batch``, its manifest lists the jobs submitted, whole or partial.
    """
    names: list[str] = []
    if batch is None:
        _write_each(items, write_one, rest, names, batch)
        return names
    try:
        _write_each(items, write_one, rest, names, batch)
    except PartialSubmitError as exc:
        problem = _manifest_problem(jar, batch, names)
        said = f"; their batch: {problem}" if problem else f"; their batch is {batch}"
        raise PartialSubmitError(f"{exc}{said}", exc.submitted, exc.total,
                                 None if problem else batch) from None
    problem = _manifest_problem(jar, batch, names)
    if problem:  # every job is queued: say which, so that none is submitted twice
        raise PartialSubmitError(f"all {len(names)} jobs submitted, but not their batch: "
                                 f"{problem}", names, len(items))
    return Batch(names, batch)


def _manifest_problem(jar: Jar, batch: str, names: list[str]) -> str | None:
    """Write the batch's manifest; what went wrong, or ``None``.

    A failure here (a full disk) must not hide which jobs were submitted.
    """
    try:
        _write_manifest(jar, batch, names)
    except OSError as exc:
        return f"cannot write {jar.batch_file(batch)}: {exc.strerror or exc}"
    return None


def _write_each(items: list, write_one, rest, names: list[str], batch: str | None) -> None:
    """``_write_all``'s loop: ``names`` grows as jobs are submitted."""
    for item in items:
        try:
            names.append(write_one(item))
        except (JobJarError, KeyboardInterrupt) as exc:  # Ctrl-C half-way through an array too
            if not names:
                if isinstance(exc, SubmitError):
                    raise SubmitError(f"{exc}; nothing submitted") from None
                raise
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
            hint = rest(len(names)) if rest else ""
            raise PartialSubmitError(f"{why}; {len(names)} of {len(items)} jobs submitted{hint}",
                                     names, len(items), batch) from None


def submit_from_file(path: str | os.PathLike, priority: int = 0, id: str | None = None,
                     category: str | None = None, **options) -> list[str]:
    """Submit one job per non-empty line of a text file (``-`` is stdin).

    Every line is checked before any job is submitted: a bad one (a NUL
    byte) submits nothing.  A failure half-way (a full disk) raises
    ``PartialSubmitError`` with the names already submitted.
    """
    import sys

    try:
        if str(path) == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="surrogateescape") as src:
                text = src.read()
    except OSError as exc:
        raise SubmitError(f"{path}: {exc.strerror}") from None
    config = load()
    jar = Jar.from_config(config)
    opts = _options(jar, options)
    opts.batch = new_batch(jar)
    scripts = []  # every line is checked before any job is submitted: all or nothing
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                scripts.append(_script(line, opts))
            except SubmitError as exc:
                raise SubmitError(f"{path}, line {number}: {exc}; nothing submitted") from None
    return _write_all(scripts, lambda script: write_job(script, priority, id, category, opts,
                                                         jar, config=config),
                      jar=jar, batch=opts.batch)


#: The most jobs one ``--array`` may submit (a typo must not fill a disk).
MAX_ARRAY = 1_000_000


def array_spec(spec: str) -> tuple[list[int], int | None]:
    """Parse a Slurm-style array spec: ``1-5,7,10-20:2%4`` -> (indexes in order, cap).

    Comma-separated parts, each ``FIRST-LAST[:STEP]`` or one index
    (``parse_array``), and an optional ``%N``: at most N jobs of the array
    run at once.  Parts must not share an index; N is at least 1.  The cap
    is kept without a daemon: job k+N waits (``--after-any``) for job k to
    finish, however it ends, so never more than N run, but which job
    follows which is fixed at submission.
    """
    text = str(spec).strip()
    body, percent, cap_text = text.partition("%")
    cap = None
    if percent:
        if not (cap_text.isascii() and cap_text.isdigit()) or int(cap_text) < 1:
            raise SubmitError(f"bad --array {spec!r}: %N needs a whole number N >= 1")
        cap = int(cap_text)
    parts = [parse_array(part) for part in body.split(",")]
    if sum(len(part) for part in parts) > MAX_ARRAY:
        raise SubmitError(f"bad --array {spec!r}: more than {MAX_ARRAY:,} jobs in one array")
    indexes = [index for part in parts for index in part]
    if len(set(indexes)) != len(indexes):
        raise SubmitError(f"bad --array {spec!r}: its ranges overlap (an index twice)")
    return indexes, (cap if cap is not None and cap < len(indexes) else None)


def format_array(indexes: list[int], cap: int | None = None) -> str:
    """An array spec for ``indexes``: evenly spaced runs as ``FIRST-LAST[:STEP]``, then ``%cap``."""
    parts: list[str] = []
    start = 0
    while start < len(indexes):
        end = start
        step = indexes[start + 1] - indexes[start] if start + 1 < len(indexes) else 1
        while step > 0 and end + 1 < len(indexes) and indexes[end + 1] - indexes[end] == step:
            end += 1
        if end - start < 2 and step != 1:  # two of a kind are not yet a run
            end = start
        first, last = indexes[start], indexes[end]
        parts.append(str(first) if first == last else
                     f"{first}-{last}" + (f":{step}" if step != 1 else ""))
        start = end + 1
    return ",".join(parts) + (f"%{cap}" if cap else "")


def parse_array(spec: str) -> range:
    """Parse one part of an array spec, ``FIRST-LAST[:STEP]`` (or a single index), into a range."""
    text = str(spec).strip()
    body, _, step_text = text.partition(":")
    first, sep, last = body.partition("-")
    try:
        start = int(first)
        stop = int(last) if sep else start
        step = int(step_text) if step_text else 1
    except ValueError:
        raise SubmitError(f"bad --array {spec!r}: expected FIRST-LAST[:STEP]") from None
    if start < 0 or stop < start or step < 1:
        raise SubmitError(f"bad --array {spec!r}: expected 0 <= FIRST <= LAST, STEP >= 1")
    if (stop - start) // step >= MAX_ARRAY:
        raise SubmitError(f"bad --array {spec!r}: more than {MAX_ARRAY:,} jobs in one array")
    return range(start, stop + 1, step)
