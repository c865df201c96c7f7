// Several threads share one vs::ConnectionPool through the shim: 4 threads x 20 Acquire, each
// running a prepared query, on a pool of 2 (so threads wait for each other).
// argv[1]: a config for the test database with DatabaseMaxPoolSize 2.
#include <vs/ConnectionPool.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 20;

void work(vs::ConnectionPool &pool, int id, std::atomic<int> &done) {
    for (int round = 0; round < kRounds; round++) {
        try {
            vs::PooledConnection conn = pool.Acquire();
            std::unique_ptr<vs::PreparedStatement> ps(conn->prepareStatement("SELECT ? + ? AS v"));
            ps->setInt(1, id);
            ps->setInt(2, round);
            std::unique_ptr<vs::ResultSet> rs(ps->executeQuery());
            CHECK(rs->next());
            CHECK(rs->getInt("v") == id + round);
            done++;
        } catch (const vs::SQLException &e) {
            std::fprintf(stderr, "thread %d round %d: %s\n", id, round, e.what());
            std::exit(1);
        }
    }
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 2);
    vs::ConnectionPool pool(argv[1]);
    std::atomic<int> done{0};
    std::vector<std::thread> threads;
    for (int id = 0; id < kThreads; id++) {
        threads.emplace_back(work, std::ref(pool), id, std::ref(done));
    }
    for (std::thread &thread : threads) thread.join();
    CHECK(done == kThreads * kRounds);
    VsPoolStats stats = pool.stats();
    CHECK(stats.checkouts == kThreads * kRounds);
    CHECK(stats.in_use == 0);
    CHECK(stats.created <= 2);
    std::printf("cpp threads ok\n");
    return 0;
}
