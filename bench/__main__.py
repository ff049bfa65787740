"""`make bench`: every benchmark, one after the other. Figures go to stdout; see docs/performance.md for the method."""

from __future__ import annotations

from bench import approvals_bench, gateway_bench, oauth_bench, policy_bench, webui_bench


def main() -> None:
    policy_bench.main()
    gateway_bench.main()
    oauth_bench.main()
    approvals_bench.main()
    webui_bench.main()


if __name__ == "__main__":
    main()
