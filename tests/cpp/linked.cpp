// Links against a separately built libvsshim.a (make, CMake or pkg-config) and calls into
// both the shim and the C ABI: a missing config file must throw vs::SQLException.
#include <vs/ConnectionPool.h>

#include <cstdio>
#include <string>

int main() {
    try {
        vs::ConnectionPool pool(std::string("/nonexistent/vs_conf.xml"));
    } catch (const vs::SQLException &e) {
        if (e.status() != VS_ERR_CONFIG) return 2;
        std::printf("linked ok (abi %u)\n", vs_abi_version());
        return 0;
    }
    return 1;
}
