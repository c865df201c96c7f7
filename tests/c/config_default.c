#define _POSIX_C_SOURCE 200809L
/* vs_config_load_default finds the file through VS_CONF (else /etc/vs/vs_conf.xml), and
 * vs_config_with_max_pool_size caps the pool size without raising it.
 * argv[1]: a config for the test database with DatabaseMaxPoolSize 3. */
#include "check.h"

#include <unistd.h>

/* Whether the pool is opening a connection now. */
static int connecting(VsPool *pool) {
    VsPoolStats stats;
    CHECK_OK(vs_pool_stats(pool, &stats));
    return stats.connecting > 0;
}

/* Takes connections until one times out while the pool opens none (it is at its maximum);
 * returns how many it got (all released after). A get that times out while a connect is
 * still under way (slow under valgrind on a loaded machine) is retried, at most 15 times. */
static int connections_available(VsPool *pool) {
    VsConn *held[16];
    int got = 0;
    int retries = 0;
    while (got < 16) {
        VsStatus status = vs_pool_get(pool, 2000, &held[got]);
        if (status == VS_ERR_TIMEOUT) {
            if (connecting(pool) && retries++ < 15) continue;
            break;
        }
        CHECK_OK(status);
        got++;
    }
    for (int i = 0; i < got; i++) vs_conn_release(held[i]);
    return got;
}

static int pool_size(const VsConfig *config) {
    VsPool *pool = NULL;
    CHECK_OK(vs_pool_open(config, &pool));
    int size = connections_available(pool);
    vs_pool_free(pool);
    return size;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    VsConfig *sentinel = (VsConfig *)1;
    VsConfig *config = sentinel;

    /* VS_CONF names the file; a missing one is a config error naming the path. */
    CHECK(setenv("VS_CONF", "/nonexistent/by-env.xml", 1) == 0);
    CHECK_STATUS(vs_config_load_default(&config), VS_ERR_CONFIG);
    CHECK(config == sentinel);
    CHECK(strstr(vs_last_error(), "/nonexistent/by-env.xml") != NULL);
    /* Unset or empty: the default path. */
    if (access("/etc/vs/vs_conf.xml", F_OK) != 0) {
        CHECK(setenv("VS_CONF", "", 1) == 0);
        CHECK_STATUS(vs_config_load_default(&config), VS_ERR_CONFIG);
        CHECK(strstr(vs_last_error(), "/etc/vs/vs_conf.xml") != NULL);
        CHECK(unsetenv("VS_CONF") == 0);
        CHECK_STATUS(vs_config_load_default(&config), VS_ERR_CONFIG);
        CHECK(strstr(vs_last_error(), "/etc/vs/vs_conf.xml") != NULL);
        CHECK(config == sentinel);
    }
    CHECK(setenv("VS_CONF", argv[1], 1) == 0);
    CHECK_OK(vs_config_load_default(&config));
    CHECK(config != sentinel && config != NULL);

    /* A cap below DatabaseMaxPoolSize lowers it; above it changes nothing. */
    VsConfig *two = sentinel;
    CHECK_STATUS(vs_config_with_max_pool_size(config, 0, &two), VS_ERR_INVALID_ARGUMENT);
    CHECK(two == sentinel);
    CHECK_OK(vs_config_with_max_pool_size(config, 2, &two));
    VsConfig *forty = NULL;
    CHECK_OK(vs_config_with_max_pool_size(config, 40, &forty));
    int size = pool_size(two);
    if (size != 2) fprintf(stderr, "capped at 2: got %d connections\n", size);
    CHECK(size == 2);
    size = pool_size(forty);
    if (size != 3) fprintf(stderr, "capped at 40: got %d connections\n", size);
    CHECK(size == 3);
    CHECK(pool_size(config) == 3); /* the original is not changed */
    vs_config_free(two);
    vs_config_free(forty);
    vs_config_free(config);
    printf("config_default ok\n");
    return 0;
}
