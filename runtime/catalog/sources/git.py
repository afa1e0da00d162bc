"""`git` repositories: a clone in the data dir, versions from tags, archives from tagged trees.

Each top-level folder holding plugin.json is a plugin; a tag `<name>-v<version>` publishes the
folder as it was at that tag. Each version becomes a tar.gz made by `git archive` from the
tagged folder, so installing from git takes the same checked path as installing from an index.
Archives are named by the tree's object id: the same tree gives the same file (and sha256) on
every sync, and a re-tagged version gives a new one.

Cloning obeys the address policy: a file:// repository must lie under an allowed folder; for
http(s) the host is resolved and checked here, and git is told to use exactly the checked
addresses (curl's resolve list: no second lookup, so no DNS rebinding in between), to follow
no redirect and to use no proxy. Other transports (ssh, git, ext) are refused.

A repository's credentials reach git through a credential helper that reads them from the
environment of that one git process: never on a command line (which other users of the
machine may read) nor in the clone's configuration (which would keep them on disk). As git
follows no redirect, they go to the checked host only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from models import Repository
from runtime.catalog.manifest import parse_manifest
from runtime.catalog.sources.fetch import shown_url
from runtime.catalog.sources.offers import OfferedPlugin, OfferedVersion, SyncError, version_key
from runtime.core.address_policy import AddressPolicy, AddressRefused, PathRefused, literal_address
from runtime.core.errors import BadUserInput
from runtime.core.redaction import strip_url_credentials
from runtime.core.url_credentials import UrlCredentials

log = logging.getLogger(__name__)

GIT_TIMEOUT = 120.0
_TAG = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]*)-v(?P<version>\d[0-9A-Za-z.+-]*)$")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# Never ask for credentials on a terminal; never read the operator's settings (system, global,
# GIT_* variables: a proxy or an `insteadOf` there would lead git past the address policy);
# never go through a proxy; only the transports the policy knows.
_ENV = {
    **{
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and key.lower() not in _PROXIES
    },
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ALLOW_PROTOCOL": "http:https:file",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USER_VARIABLE = "STREAMSPACE_GIT_USERNAME"
_PASSWORD_VARIABLE = "STREAMSPACE_GIT_PASSWORD"
# The first (empty) helper drops any the user's configuration names; the second answers git's
# `get` with the credentials in its environment.
_HELPER = (
    '!f() { test "$1" = get && '
    f'printf \'username=%s\\npassword=%s\\n\' "${_USER_VARIABLE}" "${_PASSWORD_VARIABLE}"; }}; f'
)


def _with_credentials(
    args: tuple[str, ...], credentials: UrlCredentials | None
) -> tuple[tuple[str, ...], dict[str, str]]:
    """git's arguments and environment, with a credential helper when there are credentials."""
    if credentials is None:
        return args, _ENV
    helper = ("-c", "credential.helper=", "-c", f"credential.helper={_HELPER}")
    environment = {
        **_ENV,
        _USER_VARIABLE: credentials.username,
        _PASSWORD_VARIABLE: credentials.password,
    }
    return (*helper, *args), environment


class GitError(BadUserInput):
    """A git command failed; the message carries git's own explanation."""


async def git(
    *args: str,
    cwd: Path | None = None,
    options: Sequence[str] = (),
    credentials: UrlCredentials | None = None,
) -> bytes:
    """Run git with `args` (never through a shell) and return its output; `options` go before
    the command (`-c name=value`)."""
    command, environment = _with_credentials((*options, *args), credentials)
    process = await asyncio.create_subprocess_exec(
        "git",
        *command,
        cwd=cwd,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), GIT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GitError(f"git {args[0]} took longer than {GIT_TIMEOUT:.0f}s") from None
    if process.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        reason = message[-1] if message else str(process.returncode)
        if credentials is not None:
            reason = credentials.redactor().text(reason)
        raise GitError(f"git {args[0]} failed: {reason}")
    return out


async def checked_source(url: str, policy: AddressPolicy) -> tuple[str, list[str]]:
    """What git is given for `url` once `policy` allowed it: the URL (a file's resolved path,
    so git reads the folder that was checked) and the `-c` options that hold it there.

    Raises AddressRefused or PathRefused for what the policy refuses, BadUserInput for another
    transport, OSError for a host that does not resolve.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        return policy.local_path(url).as_uri(), []
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise BadUserInput(f"{shown_url(url)}: git repositories are read over https, http or file")
    host = parts.hostname
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    answers = await policy.resolve(host, port)
    options = ["-c", "http.followRedirects=false", "-c", "http.proxy="]
    if literal_address(host) is None:
        pinned = dict.fromkeys(
            f"[{answer['host']}]" if ":" in answer["host"] else answer["host"] for answer in answers
        )
        options += ["-c", f"http.curloptResolve={host}:{port}:{','.join(pinned)}"]
    return url, options


async def update_clone(
    url: str, clone: Path, policy: AddressPolicy, credentials: UrlCredentials | None = None
) -> None:
    """Clone `url` bare into `clone`, or fetch what changed (tags moved or deleted included).

    A failure says only that the repository could not be fetched: git's reason (refused,
    reset, timed out) would tell a closed port from an open one. It is logged at DEBUG,
    without the credentials.
    """
    shown = shown_url(url)
    try:
        source, options = await checked_source(url, policy)
    except AddressRefused as error:
        raise BadUserInput(f"{shown}: {error.message}") from None
    except PathRefused as error:
        raise BadUserInput(str(error)) from None
    except (OSError, ValueError) as error:  # a name that does not resolve; a malformed port
        log.debug("git host not resolved", extra={"url": shown, "error": str(error)})
        raise BadUserInput(f"{shown} could not be fetched") from None
    first = not (clone / "HEAD").exists()
    try:
        if first:
            clone.parent.mkdir(parents=True, exist_ok=True)
            await git(
                "clone",
                "--bare",
                "--quiet",
                "--",
                source,
                str(clone),
                options=options,
                credentials=credentials,
            )
            return
        # A clone made while the URL held credentials kept them in its configuration.
        await git("config", "remote.origin.url", source, cwd=clone)
        await git(
            "fetch",
            "--quiet",
            "--prune",
            "--prune-tags",
            "--force",
            "--",
            source,
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
            cwd=clone,
            options=options,
            credentials=credentials,
        )
    except GitError as error:
        verb = "clone" if first else "fetch"
        detail = strip_url_credentials(error.message.replace(url, shown))
        log.debug("git failed", extra={"url": shown, "command": verb, "detail": detail})
        raise BadUserInput(f"{shown} could not be fetched (git {verb} failed)") from None


async def _offered_version(
    clone: Path, archives: Path, tag: str, name: str, version: str
) -> OfferedVersion:
    raw = await git("show", f"{tag}:{name}/plugin.json", cwd=clone)
    try:
        manifest = parse_manifest(orjson.loads(raw))
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{tag}: plugin.json is not valid JSON ({error})") from None
    if manifest.name != name or manifest.version != version:
        raise ValueError(f"tag {tag} holds {manifest.name} {manifest.version} in its plugin.json")
    tree = (await git("rev-parse", f"{tag}:{name}", cwd=clone)).decode().strip()
    target = archives / f"{name}-{version}-{tree[:16]}.tar.gz"
    if not target.exists():
        partial = target.with_suffix(".part")
        await git("archive", "--format=tar.gz", "-o", str(partial), f"{tree}", cwd=clone)
        partial.rename(target)
    return OfferedVersion(
        manifest=manifest,
        archive_url=target.as_uri(),
        sha256=hashlib.sha256(target.read_bytes()).hexdigest(),
        published_at=None,
    )


async def read_git_repository(
    repository: Repository,
    data_dir: Path,
    policy: AddressPolicy,
    credentials: UrlCredentials | None = None,
) -> tuple[list[OfferedPlugin], list[SyncError]]:
    """The plugins a git repository publishes, each with its tagged versions."""
    home = data_dir / "repositories" / str(repository.id)
    clone = home / "clone.git"
    archives = home / "archives"
    archives.mkdir(parents=True, exist_ok=True)
    await update_clone(repository.url, clone, policy, credentials)
    tags = (await git("tag", "--list", cwd=clone)).decode().split()
    found: dict[str, list[tuple[str, str]]] = {}
    for tag in tags:
        match = _TAG.match(tag)
        if match is not None:
            found.setdefault(match["name"], []).append((tag, match["version"]))
    plugins: list[OfferedPlugin] = []
    errors: list[SyncError] = []
    for name in sorted(found):
        versions: list[OfferedVersion] = []
        for tag, version in found[name]:
            try:
                versions.append(await _offered_version(clone, archives, tag, name, version))
            except GitError:
                errors.append(SyncError(name, f"tag {tag} has no {name}/plugin.json"))
            except BadUserInput as error:
                errors.append(SyncError(name, f"tag {tag}: {error.message}"))
            except ValueError as error:
                errors.append(SyncError(name, str(error)))
        if versions:
            versions.sort(key=lambda offered: version_key(offered.manifest.version))
            plugins.append(OfferedPlugin(name, versions))
    return plugins, errors
