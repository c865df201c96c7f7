// setAutoCommit(false) behaves as in Connector/C++ (SET autocommit = 0): LOCK TABLES does not
// end the transaction the caller thinks is open, COMMIT/ROLLBACK keep table locks, and the
// pool turns autocommit back on when the connection is released.
// argv[1]: a config for the test database with DatabaseMaxPoolSize 2.
#include <vs/ConnectionPool.h>

#include <memory>
#include <string>

#include "check.hpp"

namespace {

int64_t queryInt(vs::Connection &conn, const std::string &sql) {
    std::unique_ptr<vs::Statement> stmt(conn.createStatement());
    std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery(sql));
    CHECK(rs->next());
    return rs->getInt64(1);
}

int update(vs::Connection &conn, const std::string &sql) {
    std::unique_ptr<vs::Statement> stmt(conn.createStatement());
    return stmt->executeUpdate(sql);
}

// `other` cannot write to the table while `conn` holds LOCK TABLES ... WRITE.
void expectLocked(vs::Connection &other) {
    EXPECT_THROW(update(other, "INSERT INTO cpp_autocommit VALUES (99)"), e,
                 CHECK(e.getErrorCode() == 1205));  // lock wait timeout
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 2);
    vs::ConnectionPool pool(argv[1]);
    int64_t sessionId = 0;
    {
        vs::PooledConnection a = pool.Acquire();
        vs::PooledConnection b = pool.Acquire();
        update(*a, "DROP TABLE IF EXISTS cpp_autocommit");
        update(*a, "CREATE TABLE cpp_autocommit (id INT PRIMARY KEY) ENGINE=InnoDB");
        update(*b, "SET SESSION lock_wait_timeout = 1");

        CHECK(a->getAutoCommit());
        a->setAutoCommit(false);
        CHECK(!a->getAutoCommit());
        CHECK(queryInt(*a, "SELECT @@autocommit") == 0);

        // LOCK TABLES inside the transaction, then ROLLBACK: the insert is undone and the
        // table lock is still held.
        update(*a, "LOCK TABLES cpp_autocommit WRITE");
        CHECK(update(*a, "INSERT INTO cpp_autocommit VALUES (1)") == 1);
        a->rollback();
        CHECK(queryInt(*a, "SELECT COUNT(*) FROM cpp_autocommit") == 0);
        expectLocked(*b);

        // COMMIT keeps the lock too; UNLOCK TABLES releases it.
        CHECK(update(*a, "INSERT INTO cpp_autocommit VALUES (2)") == 1);
        a->commit();
        expectLocked(*b);
        update(*a, "UNLOCK TABLES");
        CHECK(queryInt(*b, "SELECT COUNT(*) FROM cpp_autocommit") == 1);

        // After commit() the next statement is in a new transaction (autocommit still off).
        CHECK(update(*a, "INSERT INTO cpp_autocommit VALUES (3)") == 1);
        CHECK(queryInt(*b, "SELECT COUNT(*) FROM cpp_autocommit WHERE id = 3") == 0);
        // LOCK TABLES commits what is open, as in MySQL; later work is a new transaction.
        update(*a, "LOCK TABLES cpp_autocommit WRITE");
        CHECK(update(*a, "INSERT INTO cpp_autocommit VALUES (4)") == 1);
        a->rollback();
        update(*a, "UNLOCK TABLES");
        CHECK(queryInt(*b, "SELECT COUNT(*) FROM cpp_autocommit WHERE id = 3") == 1);
        CHECK(queryInt(*b, "SELECT COUNT(*) FROM cpp_autocommit WHERE id = 4") == 0);

        // Turning autocommit on commits what is open.
        CHECK(update(*a, "INSERT INTO cpp_autocommit VALUES (5)") == 1);
        a->setAutoCommit(true);
        CHECK(a->getAutoCommit());
        CHECK(queryInt(*a, "SELECT @@autocommit") == 1);
        CHECK(queryInt(*b, "SELECT COUNT(*) FROM cpp_autocommit WHERE id = 5") == 1);
        // commit() and rollback() with autocommit on are harmless.
        a->commit();
        a->rollback();

        // Leave autocommit off with uncommitted work, then give the connection back.
        a->setAutoCommit(false);
        CHECK(update(*a, "INSERT INTO cpp_autocommit VALUES (6)") == 1);
        sessionId = queryInt(*a, "SELECT CONNECTION_ID()");
    }  // b is released first, then a: a is the most recently returned

    // The next checkout gets that same session back, rolled back and in autocommit mode.
    vs::PooledConnection again = pool.Acquire();
    CHECK(queryInt(*again, "SELECT CONNECTION_ID()") == sessionId);
    CHECK(queryInt(*again, "SELECT @@autocommit") == 1);
    CHECK(again->getAutoCommit());
    CHECK(queryInt(*again, "SELECT COUNT(*) FROM cpp_autocommit WHERE id = 6") == 0);
    std::printf("cpp autocommit ok\n");
    return 0;
}
