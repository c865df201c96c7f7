// A nested acquisition from one call site, repeated: the library warns on stderr once (C and
// C++ programs get the library's log without setting anything up), and every call is served.
// Environment: VS_CONF names the config.
#include <vs/legacy/ConnectionPool.h>

#include <cstdio>

int main() {
    ConnectionPool pool(1);
    for (int i = 0; i < 3; ++i) {
        Connection *outer = pool.GetConnection();
        Connection *inner = pool.GetConnection();  // all (one) in use, held by this thread
        pool.ReleaseConnection(inner);
        pool.ReleaseConnection(outer);
    }
    VsPoolStats stats = pool.stats();
    std::printf("self-deadlocks %llu, nested grants %llu\n", (unsigned long long)stats.self_deadlocks,
                (unsigned long long)stats.nested_grants);
    if (stats.self_deadlocks != 3 || stats.nested_grants != 3) return 1;
    std::printf("nested log ok\n");
    return 0;
}
