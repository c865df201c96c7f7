// The shim end to end: pool from a config path, DDL, prepared inserts of every type,
// typed reads by index and label, NULLs, quotes and UTF-8, transactions, RAII release.
#include <vs/ConnectionPool.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "check.hpp"

// Legacy callers catch std::runtime_error (or std::exception) around database code.
static_assert(std::is_base_of<std::runtime_error, vs::SQLException>::value,
              "vs::SQLException derives from std::runtime_error, as sql::SQLException does");

namespace {

int64_t sessionId(vs::Connection &conn) {
    std::unique_ptr<vs::Statement> stmt(conn.createStatement());
    std::unique_ptr<vs::ResultSet> rs(stmt->executeQuery("SELECT CONNECTION_ID()"));
    CHECK(rs->next());
    return rs->getInt64(1);
}

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 2);
    vs::ConnectionPool pool(argv[1]);
    const std::string text = "it's a \"quoted\" \\ caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC";
    {
        vs::PooledConnection conn = pool.Acquire();
        CHECK(!conn->isClosed());
        std::unique_ptr<vs::Statement> stmt(conn->createStatement());
        stmt->execute("DROP TABLE IF EXISTS cpp_roundtrip");
        CHECK(!stmt->execute(
            "CREATE TABLE cpp_roundtrip (id BIGINT AUTO_INCREMENT PRIMARY KEY, i INT NULL,"
            " big BIGINT NULL, u BIGINT UNSIGNED NULL, d DOUBLE NULL, flag BOOL NULL,"
            " s VARCHAR(100) CHARACTER SET utf8mb4 NULL)"));
        std::unique_ptr<vs::PreparedStatement> insert(conn->prepareStatement(
            "INSERT INTO cpp_roundtrip (i, big, u, d, flag, s) VALUES (?, ?, ?, ?, ?, ?)"));
        insert->setInt(1, -7);
        insert->setInt64(2, std::numeric_limits<int64_t>::min());
        insert->setUInt64(3, std::numeric_limits<uint64_t>::max());
        insert->setDouble(4, 2.5);
        insert->setBoolean(5, true);
        insert->setString(6, text);
        CHECK(insert->executeUpdate() == 1);
        CHECK(insert->lastInsertId() == 1);
        for (uint32_t i = 1; i <= 6; i++) insert->setNull(i);
        CHECK(insert->executeUpdate() == 1);
        CHECK(stmt->executeUpdate("UPDATE cpp_roundtrip SET i = i + 1 WHERE id = 1") == 1);

        std::unique_ptr<vs::ResultSet> rs(
            stmt->executeQuery("SELECT id, i, big, u, d, flag, s FROM cpp_roundtrip ORDER BY id"));
        CHECK(rs->rowsCount() == 2);
        CHECK(rs->getColumnCount() == 7);
        CHECK(rs->findColumn("s") == 7);
        CHECK(rs->next());
        CHECK(rs->getInt64("id") == 1);
        CHECK(rs->getInt(2) == -6);
        CHECK(rs->getInt("I") == -6);
        CHECK(rs->getInt64("big") == std::numeric_limits<int64_t>::min());
        CHECK(rs->getUInt64("u") == std::numeric_limits<uint64_t>::max());
        CHECK(std::fabs(rs->getDouble("d") - 2.5) < 1e-12);
        CHECK(rs->getBoolean("flag"));
        CHECK(rs->getString("s") == text);
        CHECK(rs->getString(2) == "-6");
        CHECK(!rs->isNull("s"));
        // The same values by 1-based index.
        CHECK(rs->getUInt(1) == 1 && rs->getUInt("id") == 1);
        CHECK(rs->getInt64(3) == std::numeric_limits<int64_t>::min());
        CHECK(rs->getUInt64(4) == std::numeric_limits<uint64_t>::max());
        CHECK(std::fabs(rs->getDouble(5) - 2.5) < 1e-12);
        CHECK(rs->getBoolean(6));
        CHECK(rs->getString(7) == text);
        // A negative value is not an unsigned one.
        EXPECT_THROW(rs->getUInt(2), e, CHECK(e.status() == VS_ERR_TYPE));
        EXPECT_THROW(rs->getUInt64("i"), e, CHECK(e.status() == VS_ERR_TYPE));
        CHECK(rs->next());
        CHECK(rs->isNull(2) && rs->isNull("s"));
        CHECK(rs->getInt(2) == 0 && rs->getString("s").empty() && !rs->getBoolean("flag"));
        CHECK(rs->getUInt(2) == 0 && rs->getUInt("i") == 0 && rs->getInt64(3) == 0);
        CHECK(rs->getUInt64(4) == 0 && rs->getDouble(5) == 0.0 && !rs->getBoolean(6));
        CHECK(!rs->next());

        // setAutoCommit(false) opens a transaction; rollback undoes it.
        conn->setAutoCommit(false);
        CHECK(!conn->getAutoCommit());
        stmt->executeUpdate("DELETE FROM cpp_roundtrip");
        conn->rollback();
        stmt->executeUpdate("UPDATE cpp_roundtrip SET i = 100 WHERE id = 1");
        conn->commit();
        conn->setAutoCommit(true);
        std::unique_ptr<vs::ResultSet> after(
            stmt->executeQuery("SELECT COUNT(*) AS n, MAX(i) AS top FROM cpp_roundtrip"));
        CHECK(after->next());
        CHECK(after->getInt("n") == 2 && after->getInt("top") == 100);

        // An error in a later statement of a multi-statement string throws.
        EXPECT_THROW(stmt->execute("SELECT 1; SELECT * FROM no_such_table"), e,
                     CHECK(e.getErrorCode() == 1146 && e.getSQLState() == "42S02"));
        EXPECT_THROW(stmt->executeQuery("SELECT 1; SELECT * FROM no_such_table"), e,
                     CHECK(e.getErrorCode() == 1146));
        EXPECT_THROW(stmt->executeUpdate("UPDATE cpp_roundtrip SET i = 1 WHERE id = 1;"
                                         " INSERT INTO cpp_roundtrip (id) VALUES (1)"),
                     e, CHECK(e.getErrorCode() == 1062 && e.getSQLState() == "23000"));
        // executeUpdate counts the rows of every statement.
        CHECK(stmt->executeUpdate("UPDATE cpp_roundtrip SET i = 2 WHERE id = 1;"
                                  " UPDATE cpp_roundtrip SET i = 3") == 3);

        // A DATE read through a prepared statement looks as it does through a query.
        std::unique_ptr<vs::PreparedStatement> date(
            conn->prepareStatement("SELECT CAST(? AS DATE) AS d, CAST(? AS DATETIME) AS dt"));
        date->setString(1, "2024-03-04");
        date->setString(2, "2024-03-04 05:06:07");
        std::unique_ptr<vs::ResultSet> dates(date->executeQuery());
        CHECK(dates->next());
        CHECK(dates->getString("d") == "2024-03-04");
        CHECK(dates->getString(2) == "2024-03-04 05:06:07");
    }
    VsPoolStats stats = pool.stats();
    CHECK(stats.in_use == 0);
    CHECK(stats.checkouts == 1);

    // Move-assigning a PooledConnection gives back the one it held and takes the other.
    {
        vs::PooledConnection first = pool.Acquire();
        vs::PooledConnection second = pool.Acquire();
        const int64_t secondSession = sessionId(*second);
        CHECK(sessionId(*first) != secondSession);
        CHECK(pool.stats().in_use == 2);
        first = std::move(second);
        CHECK(second.get() == nullptr);
        CHECK(pool.stats().in_use == 1);
        CHECK(sessionId(*first) == secondSession);
        vs::PooledConnection moved(std::move(first));
        CHECK(first.get() == nullptr && pool.stats().in_use == 1);
    }
    CHECK(pool.stats().in_use == 0);

    // close() gives the connection back at once; the object then reports closed and throws.
    {
        vs::Connection *conn = pool.GetConnection();
        CHECK(!conn->isClosed());
        conn->close();
        CHECK(conn->isClosed());
        CHECK(pool.stats().in_use == 0);
        EXPECT_THROW(conn->createStatement(), e, CHECK(e.getSQLState() == "08003"));
        EXPECT_THROW(conn->setAutoCommit(false), e, CHECK(e.getSQLState() == "08003"));
        conn->close();  // twice is harmless
        delete conn;
    }

    // Legacy API: GetConnection / ReleaseConnection, and a statement outliving its
    // connection throws instead of crashing.
    // Both kinds of statement report a closed connection the same way (SQLSTATE 08003).
    vs::Connection *conn = pool.GetConnection();
    vs::Statement *late = conn->createStatement();
    std::unique_ptr<vs::PreparedStatement> latePrepared(conn->prepareStatement("SELECT ?"));
    latePrepared->setInt(1, 1);
    pool.ReleaseConnection(conn);
    EXPECT_THROW(late->execute("SELECT 1"), e,
                 CHECK(e.getSQLState() == "08003" && e.status() == VS_ERR_INVALID_ARGUMENT &&
                       e.getErrorCode() == 0));
    EXPECT_THROW(latePrepared->executeQuery(), e,
                 CHECK(e.getSQLState() == "08003" && e.status() == VS_ERR_INVALID_ARGUMENT &&
                       e.getErrorCode() == 0));
    EXPECT_THROW(latePrepared->executeUpdate(), e, CHECK(e.getSQLState() == "08003"));
    delete late;
    CHECK(pool.stats().in_use == 0);
    std::printf("cpp roundtrip ok\n");
    return 0;
}
