// A legacy-style database client compiled through cpp-shim/compat only: Connector/C++ header
// names, `using namespace sql` from the legacy ConnectionPool.h, a singleton that owns a
// ConnectionPool(maxSize), connections held by std::shared_ptr whose deleter calls
// ReleaseConnection, a DbLock that wraps LOCK TABLES / UNLOCK TABLES, helpers that take their
// own connection while their caller holds one (three deep), and a CREATE DATABASE IF NOT
// EXISTS + setSchema bootstrap on a server where the schema does not exist yet. Concurrent LOCK
// TABLES ... READ and ... WRITE on the InnoDB table make the server pick some WRITEs as deadlock
// victims (error 1213); DbLock (db_lock.hpp) restarts them, and the report counts them. A get
// that times out while its thread holds no connection (waiting for other threads' call chains
// on a small pool) is made again and counted; a nested one that times out fails the program.
//
// Written for this project in the style of the legacy clients; none of their code.
// Environment: VS_CONF names the config (its DatabaseName does not exist: the legacy pool
// does not use it). argv: schema to create, threads, pool size, operations per thread.
#include <cppconn/driver.h>
#include <cppconn/exception.h>
#include <cppconn/metadata.h>
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <mysql_connection.h>
#include <mysql_driver.h>
#include <vs/legacy/ConnectionPool.h>

#include "db_lock.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std;

namespace {

atomic<int> g_failures(0);
int g_poolSize = 0;
string g_schema;

// Connections this thread holds now: 0 for an outer get, more for a nested one.
thread_local int t_held = 0;
// Gets that timed out while their thread held nothing (waiting for other threads' whole call
// chains, which takes longer the more loaded the machine is) and were made again; and gets
// that timed out while their thread held a connection (nested: must never happen).
atomic<int> g_outerTimeouts(0);
atomic<int> g_nestedTimeouts(0);
// How many times an outer get is made before its operation fails: 12 x 5 s.
const int kOuterGetAttempts = 12;

}  // namespace

void logError(const string &where, const SQLException &e) {
    ++g_failures;
    fprintf(stderr, "%s SQLState:%s ErrorCode:%d %s\n", where.c_str(), e.getSQLState().c_str(),
            e.getErrorCode(), e.what());
}

namespace {

class CatalogStore {
public:
    static CatalogStore *Instance() {
        lock_guard<mutex> lock(instanceMutex_);
        if (instance_ == NULL) instance_ = new CatalogStore();
        return instance_;
    }
    static void Destroy() {
        lock_guard<mutex> lock(instanceMutex_);
        delete instance_;
        instance_ = NULL;
    }

    // Holds a connection, makes sure the tables exist (two more connections, nested), then
    // inserts under a write lock.
    bool AddFile(long long uuid, const string &path) {
        shared_ptr<Connection> connection = GetConnectionShared();
        if (connection.get() == NULL) return false;
        if (!CreateTables()) return false;
        DbLock lock(connection.get(), "LOCK TABLES Meta_File WRITE");
        if (!lock.locked()) return false;
        try {
            unique_ptr<PreparedStatement> stmt(
                connection->prepareStatement("INSERT INTO Meta_File (uuid, path, corrupted) VALUES (?, ?, 0)"));
            stmt->setInt64(1, uuid);
            stmt->setString(2, path);
            return stmt->executeUpdate() == 1;
        } catch (SQLException &e) {
            logError("AddFile", e);
        }
        return false;
    }

    // Three deep: this connection, GetMetaFilePath's, and TableExists' inside it.
    bool SetFileCorrupted(long long uuid, bool corrupted) {
        shared_ptr<Connection> connection = GetConnectionShared();
        if (connection.get() == NULL) return false;
        string path;
        if (!GetMetaFilePath(uuid, path) || path.empty()) return false;
        DbLock lock(connection.get(), "LOCK TABLES Meta_File WRITE");
        if (!lock.locked()) return false;
        try {
            unique_ptr<PreparedStatement> stmt(
                connection->prepareStatement("UPDATE Meta_File SET corrupted = ? WHERE uuid = ?"));
            stmt->setBoolean(1, corrupted);
            stmt->setInt64(2, uuid);
            return stmt->executeUpdate() == 1;
        } catch (SQLException &e) {
            logError("SetFileCorrupted", e);
        }
        return false;
    }

    bool GetMetaFilePath(long long uuid, string &path) {
        shared_ptr<Connection> connection = GetConnectionShared();
        if (connection.get() == NULL) return false;
        if (!TableExists("Meta_File")) return false;
        DbLock lock(connection.get(), "LOCK TABLES Meta_File READ");
        try {
            unique_ptr<PreparedStatement> stmt(connection->prepareStatement("SELECT path FROM Meta_File WHERE uuid = ?"));
            stmt->setInt64(1, uuid);
            unique_ptr<ResultSet> rs(stmt->executeQuery());
            while (rs->next()) path = rs->getString("path");
            return true;
        } catch (SQLException &e) {
            logError("GetMetaFilePath", e);
        }
        return false;
    }

    long long Count(const string &where) {
        shared_ptr<Connection> connection = GetConnectionShared();
        if (connection.get() == NULL) return -1;
        unique_ptr<Statement> stmt(connection->createStatement());
        unique_ptr<ResultSet> rs(stmt->executeQuery("SELECT COUNT(*) AS n FROM Meta_File WHERE " + where));
        return rs->next() ? rs->getInt64("n") : -1;
    }

    VsPoolStats Stats() { return pool_->stats(); }

private:
    CatalogStore() : driver_(NULL), pool_(new ConnectionPool(g_poolSize)) {
        CreateDatabase();
        CreateTables();
    }

    // On a fresh server: no schema yet, and connections have no default one.
    bool CreateDatabase() {
        try {
            shared_ptr<Connection> connection(Acquire(),
                                              bind(&CatalogStore::ReleaseConnection, this, placeholders::_1));
            unique_ptr<Statement> stmt(connection->createStatement());
            stmt->execute("CREATE DATABASE IF NOT EXISTS " + g_schema);
            return true;
        } catch (const SQLException &e) {
            logError("CreateDatabase", e);
        }
        return false;
    }

    // GetConnection, counted in t_held. An outer get that times out is made again: on a pool
    // of 2 with 4 threads it waits for other threads' call chains, a wait bounded by their
    // work, not by the pool. A nested get that times out is counted and thrown: the pool
    // serves those beyond its maximum at once, so one timing out is the failure under test.
    Connection *Acquire() {
        for (int attempt = 1;; ++attempt) {
            try {
                Connection *connection = pool_->GetConnection();
                ++t_held;
                return connection;
            } catch (const SQLException &e) {
                if (e.status() != VS_ERR_TIMEOUT) throw;
                if (t_held > 0) {
                    ++g_nestedTimeouts;
                    throw;
                }
                if (attempt == kOuterGetAttempts) throw;
                ++g_outerTimeouts;
            }
        }
    }

    Connection *CreateConnection() {
        Connection *connection = NULL;
        try {
            connection = Acquire();
            connection->setSchema(g_schema);
        } catch (const SQLException &e) {
            logError("GetConnection", e);
            ReleaseConnection(connection);
            connection = NULL;
        }
        return connection;
    }

    shared_ptr<Connection> GetConnectionShared() {
        return shared_ptr<Connection>(CreateConnection(),
                                      bind(&CatalogStore::ReleaseConnection, this, placeholders::_1));
    }

    void ReleaseConnection(Connection *conn) {
        if (conn != NULL) --t_held;
        pool_->ReleaseConnection(conn);
    }

    bool TableExists(const string &tableName) {
        shared_ptr<Connection> connection = GetConnectionShared();
        if (connection.get() == NULL) return false;
        try {
            unique_ptr<PreparedStatement> stmt(connection->prepareStatement(
                "SELECT table_name FROM information_schema.TABLES WHERE table_schema = ? AND table_name = ?"));
            stmt->setString(1, g_schema);
            stmt->setString(2, tableName);
            unique_ptr<ResultSet> rs(stmt->executeQuery());
            return rs->next();
        } catch (SQLException &e) {
            logError("TableExists", e);
        }
        return false;
    }

    bool CreateTables() {
        shared_ptr<Connection> connection = GetConnectionShared();
        if (connection.get() == NULL) return false;
        try {
            if (!TableExists("Meta_File")) {
                unique_ptr<Statement> stmt(connection->createStatement());
                stmt->execute("CREATE TABLE IF NOT EXISTS Meta_File (uuid BIGINT PRIMARY KEY NOT NULL,"
                              " path TEXT NOT NULL, corrupted BOOL) ENGINE=InnoDB");
            }
            return true;
        } catch (SQLException &e) {
            logError("CreateTables", e);
        }
        return false;
    }

    Driver *driver_;  // declared, never used, as in the legacy clients
    unique_ptr<ConnectionPool> pool_;
    static mutex instanceMutex_;
    static CatalogStore *instance_;
};

mutex CatalogStore::instanceMutex_;
CatalogStore *CatalogStore::instance_ = NULL;

}  // namespace

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: catalog_port SCHEMA THREADS POOL_SIZE OPERATIONS\n");
        return 2;
    }
    g_schema = argv[1];
    int threads = atoi(argv[2]);
    g_poolSize = atoi(argv[3]);
    int operations = atoi(argv[4]);
    CatalogStore *store = CatalogStore::Instance();
    atomic<int> done(0);
    vector<thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.push_back(thread([&, t]() {
            for (int i = 0; i < operations; ++i) {
                long long uuid = static_cast<long long>(t) * 100000 + i;
                if (CatalogStore::Instance()->AddFile(uuid, "/objects/" + to_string(uuid) + ".data") &&
                    CatalogStore::Instance()->SetFileCorrupted(uuid, true)) {
                    ++done;
                }
            }
        }));
    }
    for (size_t t = 0; t < workers.size(); ++t) workers[t].join();
    long long expected = static_cast<long long>(threads) * operations;
    long long rows = store->Count("1");
    long long corrupted = store->Count("corrupted = 1");
    VsPoolStats stats = store->Stats();
    printf("operations %d of %lld, rows %lld, corrupted %lld, failures %d; lock deadlocks restarted %ld"
           " (most attempts %d of %d); pool of %d: timeouts %llu, self-deadlocks %llu, nested grants %llu,"
           " created %llu, in use %llu, longest wait %llu ms; outer gets made again after a timeout %d,"
           " nested timeouts %d\n",
           done.load(), expected, rows, corrupted, g_failures.load(), lockDeadlocksRetried().load(),
           mostLockAttempts().load(), kLockAttempts, g_poolSize, (unsigned long long)stats.timeouts,
           (unsigned long long)stats.self_deadlocks, (unsigned long long)stats.nested_grants,
           (unsigned long long)stats.created, (unsigned long long)stats.in_use,
           (unsigned long long)(stats.wait_max_us / 1000), g_outerTimeouts.load(), g_nestedTimeouts.load());
    CatalogStore::Destroy();
    if (done.load() != expected || rows != expected || corrupted != expected || g_failures.load() != 0 ||
        g_nestedTimeouts.load() != 0 || stats.timeouts != static_cast<unsigned long long>(g_outerTimeouts.load()) ||
        stats.in_use != 0) {
        fprintf(stderr, "legacy port: some calls stalled or failed\n");
        return 1;
    }
    printf("legacy port ok\n");
    return 0;
}
