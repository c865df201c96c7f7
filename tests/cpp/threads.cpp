// Several threads share one vs::ConnectionPool through the shim: 4 threads x 20 Acquire, each
// running a prepared query, on a pool of 2 (so threads wait for each other). Once the pool
// is gone, so are its threads: none is left exiting when main returns (valgrind's leak
// check then sees the same process whatever the scheduling).
// argv[1]: a config for the test database with DatabaseMaxPoolSize 2.
#include <vs/ConnectionPool.h>

#include <dirent.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 20;

void print_stats(const char *when, const VsPoolStats &s) {
    std::fprintf(stderr,
                 "pool %s: created %llu, connect failures %llu (consecutive %llu), checkouts %llu, "
                 "timeouts %llu, fast failures %llu, closed broken %llu idle %llu lifetime %llu "
                 "error %llu\n",
                 when, static_cast<unsigned long long>(s.created),
                 static_cast<unsigned long long>(s.connect_failures),
                 static_cast<unsigned long long>(s.consecutive_failures),
                 static_cast<unsigned long long>(s.checkouts),
                 static_cast<unsigned long long>(s.timeouts),
                 static_cast<unsigned long long>(s.fast_failures),
                 static_cast<unsigned long long>(s.closed_broken),
                 static_cast<unsigned long long>(s.closed_idle),
                 static_cast<unsigned long long>(s.closed_lifetime),
                 static_cast<unsigned long long>(s.closed_error));
}

void work(vs::ConnectionPool &pool, int id, std::atomic<int> &done) {
    for (int round = 0; round < kRounds; round++) {
        try {
            vs::PooledConnection conn = pool.Acquire();
            std::unique_ptr<vs::PreparedStatement> ps(conn->prepareStatement("SELECT ? + ? AS v"));
            ps->setInt(1, id);
            ps->setInt(2, round);
            std::unique_ptr<vs::ResultSet> rs(ps->executeQuery());
            CHECK(rs->next());
            CHECK_CMP(rs->getInt("v"), ==, id + round);
            done++;
        } catch (const vs::SQLException &e) {
            std::fprintf(stderr, "thread %d round %d: %s\n", id, round, e.what());
            print_stats("at the failure", pool.stats());
            std::exit(1);
        }
    }
}

// Threads of this process (entries of /proc/self/task).
int thread_count() {
    DIR *dir = opendir("/proc/self/task");
    CHECK(dir != nullptr);
    int count = 0;
    while (const dirent *entry = readdir(dir)) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(dir);
    return count;
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 2);
    {
        vs::ConnectionPool pool(argv[1]);
        std::atomic<int> done{0};
        std::vector<std::thread> threads;
        for (int id = 0; id < kThreads; id++) {
            threads.emplace_back(work, std::ref(pool), id, std::ref(done));
        }
        for (std::thread &thread : threads) thread.join();
        VsPoolStats stats = pool.stats();
        print_stats("after the threads", stats);
        CHECK_CMP(done.load(), ==, kThreads * kRounds);
        CHECK_CMP(stats.checkouts, ==, kThreads * kRounds);
        CHECK_CMP(stats.in_use, ==, 0);
        CHECK_CMP(stats.created, <=, 2);
    }
    CHECK_CMP(thread_count(), ==, 1);
    std::printf("cpp threads ok\n");
    return 0;
}
