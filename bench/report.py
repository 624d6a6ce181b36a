"""Tables for the benchmark scripts (imported by their inline reports).

Each measured run left $W/<name>.m: "seconds peak_kib requests bytes" (the
last two are 0 without proxies). A row with trials has <name>_1 ..
<name>_<runs>; its figures are medians over the trials."""
import os
import statistics


class Results:
    def __init__(self, work, runs):
        self.work, self.runs = work, runs

    def one(self, name):
        with open(os.path.join(self.work, name + ".m")) as f:
            t, rss, req, moved = f.read().split()
        return float(t), int(rss) / 1024, int(req), int(moved)

    def trials(self, name):
        if os.path.exists(os.path.join(self.work, name + ".m")):
            return [self.one(name)]
        return [self.one(f"{name}_{i}") for i in range(1, self.runs + 1)]

    def median(self, name):
        """(seconds, peak MiB, requests, bytes): the medians of the trials."""
        rows = self.trials(name)
        return tuple(statistics.median(r[i] for r in rows) for i in range(4))

    def table(self, names, latency):
        counted = os.environ.get("BENCH_COUNTED", "requests")
        print(f"{'run':<26}{'median s':>10}{'peak MiB':>10}", end="")
        if latency:
            print(f"{counted:>12}{'MiB moved':>11}", end="")
        print("   trials (s)")
        for n in names:
            t, rss, req, moved = self.median(n)
            each = " ".join(f"{r[0]:.2f}" for r in self.trials(n))
            print(f"{n:<26}{t:>10.2f}{rss:>10.1f}", end="")
            if latency:
                print(f"{req:>12.0f}{moved / 1048576:>11.1f}", end="")
            print(f"   {each}")

    def ratio(self, ours, peer):
        return self.median(ours)[0] / self.median(peer)[0]
