"""Run by the two-process race test: 25 threads in this process approve, reject or claim one request."""

from __future__ import annotations

import json
import sys
import threading

from service.approvals import service
from service.approvals.schemas import Approver, Verdict
from service.db.engine import make_engine, unit_of_work
from service.errors import Conflict
from service.users.models import Role


def main(url: str, request_id: int, tag: str) -> None:
    engine = make_engine(url)
    results: list[dict[str, object]] = []
    lock = threading.Lock()
    start = threading.Barrier(25)

    def race(index: int) -> None:
        verdict = Verdict.REJECT if index % 3 == 1 else Verdict.APPROVE
        approver = Approver(f"{tag}{index}", Role.APPROVER, "api")
        start.wait()
        try:
            with unit_of_work(engine) as session:
                service.apply_verdict(session, request_id, approver, verdict, reason="race")
            won = True
        except Conflict:
            won = False
        with unit_of_work(engine) as session:
            claimed = service.claim(session, request_id)
        with lock:
            results.append({"won": won, "claimed": claimed})

    threads = [threading.Thread(target=race, args=(i,)) for i in range(25)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
