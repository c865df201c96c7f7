// DbLock for the legacy-style test clients: LOCK TABLES for the lifetime of the object, UNLOCK
// TABLES at its end, in the style of the legacy DbLock; written for this project, none of its code.
//
// Unlike the legacy DbLock (which logs a failed LOCK TABLES and lets its caller carry on without
// the lock), this one restarts a LOCK TABLES that the server chose as a deadlock victim, as the
// server's message asks. MariaDB does that to LOCK TABLES ... WRITE under concurrent LOCK TABLES
// ... READ on an InnoDB table, whatever the client library: READ opens the table with a
// shared-read metadata lock and then upgrades it to shared-read-only; a WRITE request queued in
// between waits for the reader's shared-read lock, while the reader's upgrade waits behind the
// queued WRITE (sql/mdl.cc: SNRW waits for a granted SR; SRO waits behind a pending SNRW). Both
// requests weigh the same to the deadlock detector (DEADLOCK_WEIGHT_DDL), and on a tie it picks
// the request that closed the cycle, typically the WRITE. The reader restarts its own statement
// inside the server (lock_tables_open_and_lock_tables); the WRITE fails with 1213 (SQLSTATE 40001)
// having released everything it took. The server adds weight to a context each time it picks it
// (MDL_context::inc_deadlock_overweight), yet on a loaded machine restarting at once saw the same
// WRITE picked up to 8 times in a row: it came back before the readers the server had just let in
// finished their upgrade. So DbLock pauses before each restart (1 ms, doubling up to 32 ms: a
// retry backoff, not a synchronisation; nothing depends on its length) and gives up after
// kLockAttempts attempts, logging the error as before.
//
// The including program defines logError(where, e) (it counts failures).
#ifndef VS_TEST_LEGACY_DB_LOCK_HPP
#define VS_TEST_LEGACY_DB_LOCK_HPP

#include <vs/legacy/ConnectionPool.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

void logError(const std::string &where, const SQLException &e);

/// The server's error for a statement chosen as a deadlock victim (ER_LOCK_DEADLOCK).
const int kErLockDeadlock = 1213;
/// How many times DbLock issues LOCK TABLES when the server keeps choosing it as the victim.
const int kLockAttempts = 20;

/// The pause before attempt `attempt + 1` of a LOCK TABLES chosen as a deadlock victim.
inline std::chrono::milliseconds lockBackoff(int attempt) {
    return std::chrono::milliseconds(attempt < 6 ? 1 << (attempt - 1) : 32);
}

/// LOCK TABLES restarted because the server chose it as a deadlock victim, in this process.
inline std::atomic<long> &lockDeadlocksRetried() {
    static std::atomic<long> count(0);
    return count;
}

/// The most attempts one LOCK TABLES needed, in this process.
inline std::atomic<int> &mostLockAttempts() {
    static std::atomic<int> most(0);
    return most;
}

// LOCK TABLES for the lifetime of the object, UNLOCK TABLES at its end.
class DbLock {
public:
    DbLock(Connection *conn, const std::string &lockStr) : conn_(conn), locked_(false) {
        for (int attempt = 1; attempt <= kLockAttempts && !locked_; ++attempt) {
            try {
                std::unique_ptr<Statement> stmt(conn_->createStatement());
                stmt->executeUpdate(lockStr);
                locked_ = true;
                noteAttempts(attempt);
            } catch (SQLException &e) {
                if (e.getErrorCode() == kErLockDeadlock && attempt < kLockAttempts) {
                    ++lockDeadlocksRetried();
                    std::this_thread::sleep_for(lockBackoff(attempt));
                    continue;
                }
                logError("LockTables \"" + lockStr + "\" (attempt " + std::to_string(attempt) + ")", e);
                return;
            }
        }
    }
    ~DbLock() {
        if (!locked_) return;
        try {
            std::unique_ptr<Statement> stmt(conn_->createStatement());
            stmt->executeUpdate("unlock tables");
        } catch (SQLException &e) {
            logError("UnLockTables", e);
        }
    }
    bool locked() const { return locked_; }

private:
    static void noteAttempts(int attempts) {
        int most = mostLockAttempts().load();
        while (attempts > most && !mostLockAttempts().compare_exchange_weak(most, attempts)) {
        }
    }

    Connection *conn_;
    bool locked_;
};

#endif
