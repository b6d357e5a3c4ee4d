"""A desktop or command-line tool that works offline: events are spooled on disk and the backlog goes out on the
next start with a network, by itself.

    python desktop_tool.py RUN_ID EXPERIMENT_ID [--rating N]
"""

from __future__ import annotations

import argparse

from promptstream import PromptStreamClient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_id")
    parser.add_argument("experiment_id")
    parser.add_argument("--rating", type=float)
    args = parser.parse_args(argv)
    with PromptStreamClient() as client:
        if args.rating is not None:
            client.track_rating(args.run_id, args.experiment_id, rating=args.rating)
        # A short wait, so an offline tool never hangs: what is not delivered stays in the spool, and the next
        # start with a network sends it (this one's backlog included), without being asked.
        client.flush(timeout=1.0)
        stats = client.stats()
        print(f"delivered: {stats.sent}, waiting in the spool: {stats.pending}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
