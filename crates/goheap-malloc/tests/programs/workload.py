# A Python workload for tests/real_programs.rs, run with PYTHONMALLOC=malloc so that every
# Python object comes from the C allocator: dicts, lists, strings, a JSON round trip, sorting,
# sets, bytes, and threads that allocate concurrently. Deterministic: its output must be
# identical with and without goheap preloaded.
import collections
import hashlib
import json
import random
import threading

random.seed(12345)

d = {f"key{i}": [i, str(i) * (i % 7), {"n": i, "sq": i * i, "f": i / 7}] for i in range(20000)}
s = json.dumps(d, sort_keys=True)
d2 = json.loads(s)
assert d == d2
print("json", len(s), hashlib.sha256(s.encode()).hexdigest())

words = ["".join(random.choice("abcdefghij") for _ in range(random.randint(1, 12))) for _ in range(50000)]
c = collections.Counter(words)
print("counter", c.most_common(5))

parts = []
for i in range(30000):
    parts.append(("%d:%s" % (i, words[i % len(words)])).upper())
joined = "|".join(parts)
print("join", len(joined), hashlib.md5(joined.encode()).hexdigest())

results = [None] * 8


def work(k):
    local = {}
    for i in range(20000):
        key = i % 1000
        local[key] = local.get(key, "") + chr(97 + (i + k) % 26)
        if len(local[key]) > 50:
            local[key] = local[key][::2]
    blobs = [bytes([k]) * (i % 3000) for i in range(2000)]
    results[k] = (sum(len(v) for v in local.values()), sum(len(b) for b in blobs))


threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads", results)

big = sorted((random.random(), i) for i in range(100000))
print("sort", big[0][1], big[-1][1])
print("sets", len(set(words) & {w[::-1] for w in words}))
print("bytes", sum(len(bytes(range(256)) * (i % 5)) for i in range(1000)))
tree = {}
for i in range(50000):
    node = tree
    for ch in str(i * 2654435761 % 1000003):
        node = node.setdefault(ch, {})
del tree
print("done")
