"""Minimum mutator utilisation from a list of pauses (stdlib only).

The one Python implementation of the MMU computation, used by latency.py (to check
the programs' own numbers, which use the same algorithm in Go and Rust) and by
run.py --mmu (binary-trees, from gctrace pauses). Definition (Cheng & Blelloch,
PLDI 2001): MMU(w) = min over every window [t, t+w) inside the run of the fraction
of the window not covered by pauses. README.md, "Definitions".
"""

import bisect


def mmu(ps, pe, total, w):
    """ps, pe: starts and ends of sorted, disjoint pauses inside [0, total); w: window.
    The minimum is reached by a window that starts at a pause's start or ends at a
    pause's end, so only those 2n windows (clamped into the run) are evaluated, each
    with two binary searches over prefix sums. A window wider than the run is the
    whole run."""
    if not ps:
        return 1.0
    if w >= total:
        return 1.0 - sum(b - a for a, b in zip(ps, pe)) / total
    cum = [0]
    for a, b in zip(ps, pe):
        cum.append(cum[-1] + b - a)

    def paused(x):  # pause time in [0, x)
        k = bisect.bisect_left(ps, x)  # pauses starting before x
        p = cum[k]
        if k > 0 and pe[k - 1] > x:
            p -= pe[k - 1] - x
        return p

    worst = 0
    for cand in ps + [e - w for e in pe]:
        t = min(max(cand, 0), total - w)
        worst = max(worst, paused(t + w) - paused(t))
    return 1.0 - worst / w


def normalise(intervals, total):
    """Sorts (start, end) pairs, clips them to [0, total) and merges overlaps."""
    out = []
    for a, b in sorted(intervals):
        a, b = max(a, 0), min(b, total)
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [a for a, _ in out], [b for _, b in out]


def self_test():
    """bench-workloads.md 5.3: one 1 ms pause every 10 ms gives MMU(1 ms) = 0,
    MMU(2 ms) = 0.5 and MMU(10 ms) = 0.9."""
    ms = 1_000_000
    ps = [i * 10 * ms for i in range(100)]
    pe = [p + ms for p in ps]
    got = [round(mmu(ps, pe, 1000 * ms, w * ms), 6) for w in (1, 2, 10, 100)]
    assert got == [0.0, 0.5, 0.9, 0.9], got
    assert mmu([], [], 10, 5) == 1.0
    assert normalise([(5, 7), (0, 2), (1, 3), (9, 20)], 10) == ([0, 5, 9], [3, 7, 10])
    return got


if __name__ == "__main__":
    print("mmu self-test ok:", self_test())
