// The deadlock behind catalog_port's rare 1213, made to happen every time, and DbLock restarting
// the LOCK TABLES ... WRITE that the server picks as its victim (see db_lock.hpp).
//
// An open transaction that updated the InnoDB table holds a shared-write metadata lock. A
// reader's LOCK TABLES ... READ takes its shared-read lock and waits to upgrade it to
// shared-read-only behind that transaction. The writer's LOCK TABLES ... WRITE then waits for
// the reader's shared-read lock while the reader's upgrade waits behind the writer's request:
// the server picks the writer as the victim (1213). DbLock issues LOCK TABLES again; once the
// transaction ends, reader and writer both get their locks and the writer's update lands.
//
// Written for this project in the style of the legacy clients; none of their code.
// Environment: VS_CONF names the config. argv: schema to create.
#include <vs/legacy/ConnectionPool.h>

#include "db_lock.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace {

std::atomic<int> g_failures(0);

/// How long a wait for the server to reach a state may take before the program gives up.
const std::chrono::seconds kStateDeadline(60);

void update(Connection *conn, const std::string &sql) {
    std::unique_ptr<Statement> stmt(conn->createStatement());
    stmt->executeUpdate(sql);
}

long long queryNumber(Connection *conn, const std::string &sql) {
    std::unique_ptr<Statement> stmt(conn->createStatement());
    std::unique_ptr<ResultSet> rs(stmt->executeQuery(sql));
    return rs->next() ? rs->getInt64("n") : -1;
}

/// Whether session `id` waits for a metadata lock while running a statement that starts with
/// `statement`; a failed look is logged and counts as no.
bool waitsForMetadataLock(Connection *monitor, long long id, const std::string &statement) {
    try {
        std::unique_ptr<PreparedStatement> stmt(monitor->prepareStatement(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST"
            " WHERE ID = ? AND STATE = 'Waiting for table metadata lock' AND INFO LIKE ?"));
        stmt->setInt64(1, id);
        stmt->setString(2, statement + "%");
        std::unique_ptr<ResultSet> rs(stmt->executeQuery());
        return rs->next() && rs->getInt64("n") == 1;
    } catch (SQLException &e) {
        logError("PROCESSLIST", e);
        return false;
    }
}

/// Polls `done` until it holds or kStateDeadline passes; returns whether it held.
bool pollUntil(const std::function<bool()> &done) {
    std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + kStateDeadline;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
}

}  // namespace

void logError(const std::string &where, const SQLException &e) {
    ++g_failures;
    std::fprintf(stderr, "%s SQLState:%s ErrorCode:%d %s\n", where.c_str(), e.getSQLState().c_str(),
                 e.getErrorCode(), e.what());
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: lock_deadlock SCHEMA\n");
        return 2;
    }
    std::string schema = argv[1];
    ConnectionPool pool(8);
    try {
        Connection *setup = pool.GetConnection();
        update(setup, "CREATE DATABASE IF NOT EXISTS " + schema);
        setup->setSchema(schema);
        update(setup, "CREATE TABLE Meta_File (uuid BIGINT PRIMARY KEY NOT NULL, path TEXT NOT NULL,"
                      " corrupted BOOL) ENGINE=InnoDB");
        update(setup, "INSERT INTO Meta_File VALUES (1, '/objects/1.data', 0)");
        pool.ReleaseConnection(setup);

        Connection *transaction = pool.GetConnection();
        Connection *reader = pool.GetConnection();
        Connection *writer = pool.GetConnection();
        Connection *monitor = pool.GetConnection();
        transaction->setSchema(schema);
        reader->setSchema(schema);
        writer->setSchema(schema);
        long long readerId = queryNumber(reader, "SELECT CONNECTION_ID() AS n");

        // Held until commit: the shared-write metadata lock of a transaction that changed the table.
        transaction->setAutoCommit(false);
        update(transaction, "UPDATE Meta_File SET path = '/objects/1.moved' WHERE uuid = 1");

        std::atomic<bool> readerLocked(false);
        std::thread readerThread([&]() {
            DbLock lock(reader, "LOCK TABLES Meta_File READ");
            readerLocked = lock.locked();
        });
        bool readerWaits = pollUntil([&]() { return waitsForMetadataLock(monitor, readerId, "LOCK TABLES"); });

        std::atomic<bool> writerLocked(false), writerDone(false);
        std::atomic<int> updated(-1);
        std::thread writerThread([&]() {
            {
                DbLock lock(writer, "LOCK TABLES Meta_File WRITE");
                writerLocked = lock.locked();
                if (lock.locked()) {
                    try {
                        std::unique_ptr<Statement> stmt(writer->createStatement());
                        updated = stmt->executeUpdate("UPDATE Meta_File SET corrupted = 1 WHERE uuid = 1");
                    } catch (SQLException &e) {
                        logError("Update under the write lock", e);
                    }
                }
            }
            writerDone = true;
        });
        // The victim's error comes back at once; without a restart the writer is done then.
        bool settled = pollUntil([&]() { return lockDeadlocksRetried().load() >= 1 || writerDone.load(); });

        transaction->commit();
        readerThread.join();
        writerThread.join();
        long long corrupted = queryNumber(monitor, "SELECT corrupted AS n FROM " + schema + ".Meta_File WHERE uuid = 1");
        pool.ReleaseConnection(transaction);
        pool.ReleaseConnection(reader);
        pool.ReleaseConnection(writer);
        pool.ReleaseConnection(monitor);

        std::printf("reader waited for its upgrade %d; write lock restarted %ld (seen before the commit %d),"
                    " locked %d, rows updated %d; reader locked %d; corrupted %lld; failures %d\n",
                    readerWaits, lockDeadlocksRetried().load(), settled, writerLocked.load(), updated.load(),
                    readerLocked.load(), corrupted, g_failures.load());
        if (!readerWaits || !settled || lockDeadlocksRetried().load() < 1 || !writerLocked || updated != 1 ||
            !readerLocked || corrupted != 1 || g_failures.load() != 0) {
            std::fprintf(stderr, "lock deadlock: the write lock was not restarted to success\n");
            return 1;
        }
    } catch (const SQLException &e) {
        logError("lock deadlock", e);
        return 1;
    }
    std::printf("lock deadlock ok\n");
    return 0;
}
