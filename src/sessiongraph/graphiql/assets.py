"""GraphiQL's files: which releases of which npm packages, and how they are installed.

The browser must load nothing from another host (a machine offline, or a strict
network, would show a page stuck loading), so the files come with the server. They are
not in the repository: ``scripts/bootstrap`` runs this module, which has npm fetch each
release's tarball (``npm pack``: the registry, the npm cache and npm's own settings, no
dependency tree), checks it against the sha512 recorded below — the registry's
``dist.integrity`` of that release when it was pinned, so a changed or substituted file
is refused, whatever the registry says now — and copies out only the prebuilt browser
bundles, which run without a bundler. What was installed is recorded (``installed.json``)
so a later bootstrap does nothing, and a server whose folder is missing or holds other
releases than these says so on the page instead of failing in the browser.

Run: ``python -m sessiongraph.graphiql.assets`` (``--check`` only reports).
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

#: Where the files are installed: inside the package (git-ignored), beside this module.
VENDOR = Path(__file__).with_name("vendor")
#: The record of what ``VENDOR`` holds.
RECORD = "installed.json"
#: How the page names the command that installs them.
INSTALL_COMMAND = "scripts/bootstrap"


@dataclasses.dataclass(frozen=True)
class Release:
    """One npm package at one version, its tarball's sha512 (``dist.integrity``), and
    the files of it the page loads (paths inside the tarball's ``package/`` folder)."""

    name: str
    version: str
    integrity: str
    files: tuple[str, ...]

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


# GraphiQL 3 is the last major line with a prebuilt browser bundle (UMD) that needs no
# bundler; it bundles graphql-ws, so subscriptions go over the WebSocket. React 18 is the
# last with UMD builds. The explorer plugin is the one that fits GraphiQL 3's plugin API.
RELEASES = (
    Release(
        "react",
        "18.2.0",
        "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
        ("umd/react.production.min.js",),
    ),
    Release(
        "react-dom",
        "18.2.0",
        "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
        ("umd/react-dom.production.min.js",),
    ),
    Release(
        "graphiql",
        "3.8.3",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        ("graphiql.min.js", "graphiql.min.css"),
    ),
    Release(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
        ("dist/index.umd.js", "dist/style.css"),
    ),
)


class InstallError(Exception):
    """The files could not be installed; the message says why."""


def asset_paths() -> list[str]:
    """Every installed file, as its path under ``VENDOR`` (and under the static URL):
    ``<name>@<version>/<file>``, so a new release is a new URL."""
    return [f"{release.spec}/{file}" for release in RELEASES for file in release.files]


def _record(releases: tuple[Release, ...] = RELEASES) -> dict[str, str]:
    return {release.spec: release.integrity for release in releases}


def missing(vendor: Path = VENDOR) -> list[str]:
    """What is wrong with ``vendor``, one line each: nothing when it holds these releases."""
    try:
        recorded = json.loads((vendor / RECORD).read_text())
    except (OSError, ValueError):
        return ["no GraphiQL files are installed"]
    if recorded != _record():
        return ["the GraphiQL files installed are other releases than this sessiongraph needs"]
    return [f"{path} is missing" for path in asset_paths() if not (vendor / path).is_file()]


def integrity(data: bytes) -> str:
    """The Subresource Integrity string npm records for a tarball."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def install(
    vendor: Path = VENDOR, *, releases: tuple[Release, ...] = RELEASES, npm: str = "npm"
) -> None:
    """Fetch, check and install the files of ``releases`` into ``vendor`` (replacing what
    it held, only once everything is checked); nothing changes on an error."""
    if shutil.which(npm) is None:
        raise InstallError(
            "npm is not installed: GraphiQL's files come from the npm registry "
            "(on Debian: apt-get install npm), then run scripts/bootstrap again"
        )
    vendor.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".graphiql-", dir=vendor.parent) as work:
        tarballs = Path(work) / "tarballs"
        tarballs.mkdir()
        packed = subprocess.run(
            [npm, "pack", "--json", "--pack-destination", str(tarballs)]
            + [release.spec for release in releases],
            capture_output=True,
            text=True,
            check=False,
        )
        if packed.returncode != 0:
            raise InstallError(f"npm pack failed:\n{packed.stderr.strip()}")
        names = {entry["id"]: entry["filename"] for entry in json.loads(packed.stdout)}
        staged = Path(work) / "vendor"
        for release in releases:
            tarball = tarballs / names[release.spec]
            data = tarball.read_bytes()
            if integrity(data) != release.integrity:
                raise InstallError(
                    f"{release.spec}: the tarball's sha512 is not the one recorded "
                    f"({integrity(data)}, expected {release.integrity}); nothing installed"
                )
            _extract(tarball, release, staged / release.spec)
        (staged / RECORD).write_text(json.dumps(_record(releases), indent=2) + "\n")
        old = Path(work) / "old"
        if vendor.exists():
            vendor.rename(old)
        staged.rename(vendor)


def _extract(tarball: Path, release: Release, into: Path) -> None:
    """Only the files the page loads, each also gzipped (served to clients that accept it)."""
    with tarfile.open(tarball, "r:gz") as archive:
        for file in release.files:
            try:
                member = archive.getmember(f"package/{file}")
            except KeyError:
                raise InstallError(f"{release.spec} has no {file}") from None
            source = archive.extractfile(member) if member.isfile() else None
            if source is None:  # a link or a folder: not what was pinned
                raise InstallError(f"{release.spec}: {file} is not a plain file")
            content = source.read()
            target = into / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.with_name(target.name + ".gz").write_bytes(
                gzip.compress(content, compresslevel=9, mtime=0)
            )


def main(argv: list[str] | None = None) -> int:
    """Install the files unless they are there already; ``--check`` only reports."""
    args = sys.argv[1:] if argv is None else argv
    problems = missing()
    if not problems:
        return 0
    if "--check" in args:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print("== installing GraphiQL's files (npm pack, sha512 checked)", file=sys.stderr)
    try:
        install()
    except InstallError as error:
        print(f"GraphiQL's files not installed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
