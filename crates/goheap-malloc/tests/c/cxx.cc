/* C++ allocation goes through malloc: libstdc++'s operator new, new[], the aligned
 * operator new (C++17, via aligned_alloc), exception objects (__cxa_allocate_exception) and
 * the standard containers all call the C allocator, so with the library preloaded they are
 * served by goheap. libstdc++'s own constructor allocates its emergency exception pool
 * before goheap's constructor runs, so this program also checks that it is the process's
 * only thread (goheap must not have started its background scavenger then).
 *
 * With the argument "goheap", the program checks that new really reached goheap:
 * malloc_usable_size(new char[20]) is 32 there (the 32-byte class) and 24 under glibc. The
 * 10,000 objects of 48 bytes are counted in the statistics report by tests/api.rs. */
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "check.h"

struct Node {
    long v[6]; // 48 bytes
};

struct alignas(256) Wide {
    char c[300];
};

int main(int argc, char **argv) {
    bool goheap = argc > 1 && std::strcmp(argv[1], "goheap") == 0;
    int threads = count_threads();
    std::printf("threads at start %d\n", threads);
    CHECK(threads == 1);

    std::vector<Node *> nodes;
    for (int i = 0; i < 10000; i++) {
        Node *n = new Node;
        n->v[0] = i;
        nodes.push_back(n);
    }
    long sum = 0;
    for (Node *n : nodes) {
        sum += n->v[0];
        delete n;
    }
    CHECK(sum == 49995000L);

    char *a = new char[20];
    CHECK(malloc_usable_size(a) >= 20);
    if (goheap)
        CHECK(malloc_usable_size(a) == 32);
    delete[] a;

    std::vector<Wide *> wides;
    for (int i = 0; i < 100; i++) {
        wides.push_back(new Wide);
        CHECK(ALIGNED(wides.back(), 256));
    }
    for (Wide *w : wides)
        delete w;

    std::map<int, std::string> m;
    std::unordered_map<std::string, std::vector<int>> u;
    for (int i = 0; i < 20000; i++) {
        m[i] = std::to_string(i * 7);
        u[m[i]].push_back(i);
    }
    for (int i = 0; i < 20000; i += 2)
        m.erase(i);
    CHECK(m.size() == 10000 && u.size() == 20000);

    int caught = 0;
    for (int i = 0; i < 1000; i++) {
        try {
            throw std::runtime_error("error number " + std::to_string(i));
        } catch (const std::runtime_error &e) {
            caught += std::strncmp(e.what(), "error number", 12) == 0;
        }
    }
    CHECK(caught == 1000);

    bool bad_alloc = false;
    try {
        volatile std::size_t n = std::size_t(-1) / 4;
        char *p = new char[n];
        delete[] p;
    } catch (const std::bad_alloc &) {
        bad_alloc = true;
    }
    CHECK(bad_alloc);

    std::vector<std::thread> ts;
    std::vector<std::shared_ptr<std::string>> shared(8);
    for (int t = 0; t < 8; t++)
        ts.emplace_back([t, &shared] {
            std::vector<std::unique_ptr<std::string>> v;
            for (int i = 0; i < 5000; i++)
                v.push_back(std::make_unique<std::string>(100 + i % 50, char('a' + t)));
            shared[t] = std::make_shared<std::string>(*v[t]);
        });
    for (auto &t : ts)
        t.join();
    for (int t = 0; t < 8; t++)
        CHECK(shared[t]->size() == std::size_t(100 + t) && (*shared[t])[0] == 'a' + t);
    shared.clear(); // freed by the main thread: remote frees into exited threads' spans

    if (failures)
        return 1;
    std::printf("cxx ok\n");
    return 0;
}
