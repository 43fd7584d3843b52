"""`python -m app [--address A] [--port P] [--allow-anonymous] [streamlit flags…]`: start the notebook app,
refusing a non-loopback address unless sign-in is configured or --allow-anonymous is given (`app.serving`).
Any other flag (`--secrets.files F`, `--server.baseUrlPath x`, …) goes to `streamlit run` as it is."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from app.serving import (ALLOW_ANONYMOUS_ENV, cookie_secret_problem, default_secrets_files, read_auth_section,
                         refusal_to_serve, sign_in_configured)
from lab_notes import apply_umask

SCRIPT = Path(__file__).resolve().parent / "streamlit_app.py"


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="127.0.0.1",
                        help="where to listen (default 127.0.0.1; another address needs sign-in or "
                             "--allow-anonymous)")
    parser.add_argument("--port", type=int, help="port (default: .streamlit/config.toml's, else 8501)")
    parser.add_argument("--allow-anonymous", action="store_true",
                        help="serve without sign-in on a non-loopback address: anyone who reaches it can read, "
                             "launch and delete")
    return parser.parse_known_args(argv)


def secrets_files_in(flags: list[str]) -> list[Path]:
    """The files named by `--secrets.files F` / `--secrets.files=F` among streamlit's flags (Streamlit then
    reads only those)."""
    files = []
    for i, flag in enumerate(flags):
        if flag == "--secrets.files" and i + 1 < len(flags):
            files.append(Path(flags[i + 1]))
        elif flag.startswith("--secrets.files="):
            files.append(Path(flag.split("=", 1)[1]))
    return files


def main(argv: list[str] | None = None) -> int:
    args, streamlit_flags = parse(sys.argv[1:] if argv is None else argv)
    try:
        apply_umask()  # the server (exec'd below) and the workers it starts inherit it: files are the owner's
    except ValueError as error:
        print(f"python -m app: {error}", file=sys.stderr)
        return 2
    if any(flag.split("=", 1)[0] in ("--server.address", "--server.port") for flag in streamlit_flags):
        # Passed on, it would override --address after the check: the check must see the address that is served.
        print("python -m app: give the address and port as --address and --port", file=sys.stderr)
        return 2
    files = secrets_files_in(streamlit_flags) or default_secrets_files(SCRIPT, Path.cwd(), Path.home())
    auth = read_auth_section(files)
    refusal = cookie_secret_problem(auth) or refusal_to_serve(args.address, signed_in=sign_in_configured(auth),
                                                              allow_anonymous=args.allow_anonymous)
    if refusal:
        print(f"python -m app: {refusal}", file=sys.stderr)
        return 2
    # static serving on whatever the working folder's config says: the live charts load uPlot from app/static/
    command = [sys.executable, "-m", "streamlit", "run", str(SCRIPT), "--server.address", args.address,
               "--server.enableStaticServing", "true", *(["--server.port", str(args.port)] if args.port else []),
               *streamlit_flags]
    env = {**os.environ, ALLOW_ANONYMOUS_ENV: "1" if args.allow_anonymous else "0"}
    os.execve(sys.executable, command, env)  # the server takes this process's place: signals reach it directly


if __name__ == "__main__":
    sys.exit(main())
