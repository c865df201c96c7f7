// The Connector/C++ calls beyond what the legacy clients use, through cpp-shim/compat:
// setBigInt, setDateTime, getUpdateCount, wasNull, first/last/getRow (and the other cursor
// moves), getSchema, isValid, and a PreparedStatement used as a Statement.
// argv[1]: a config for the test database.
#include <cppconn/prepared_statement.h>
#include <cppconn/resultset.h>
#include <cppconn/statement.h>
#include <vs/ConnectionPool.h>

#include <cstdint>
#include <memory>
#include <string>

#include "check.hpp"

namespace {

// Runs SQL text through any Statement, as code written for Connector/C++ may.
int runThrough(sql::Statement &stmt, const std::string &text) { return stmt.executeUpdate(text); }

}  // namespace

int main(int argc, char **argv) {
    CHECK(argc == 2);
    vs::ConnectionPool pool((std::string(argv[1])));
    sql::Connection *con = pool.GetConnection();
    CHECK(con->isValid());
    const std::string schema = con->getSchema();
    CHECK(!schema.empty());

    std::unique_ptr<sql::Statement> stmt(con->createStatement());
    CHECK(stmt->getUpdateCount() == UINT64_MAX);
    CHECK(!stmt->execute("CREATE TABLE extras (id BIGINT UNSIGNED PRIMARY KEY, at DATETIME NULL, note VARCHAR(20))"));
    CHECK(stmt->getUpdateCount() == 0);

    // setBigInt: the extremes of both signs, and text that is no integer is refused.
    std::unique_ptr<sql::PreparedStatement> insert(
        con->prepareStatement("INSERT INTO extras (id, at, note) VALUES (?, ?, ?)"));
    insert->setBigInt(1, "18446744073709551615");
    insert->setDateTime(2, "2024-03-04 05:06:07");
    insert->setString(3, "max");
    CHECK(insert->executeUpdate() == 1 && insert->getUpdateCount() == 1);
    insert->setBigInt(1, "1");
    insert->setNull(2, sql::DataType::TIMESTAMP);
    insert->setNull(3, sql::DataType::VARCHAR);
    CHECK(insert->executeUpdate() == 1);
    insert->setBigInt(1, "2");
    insert->setDateTime(2, "1999-12-31 23:59:59");
    insert->setString(3, "two");
    CHECK(insert->executeUpdate() == 1);
    EXPECT_THROW(insert->setBigInt(1, "12x"), e, CHECK(e.getSQLState() == "S1009"));
    EXPECT_THROW(insert->setBigInt(1, "18446744073709551616"), e, CHECK(e.getSQLState() == "S1009"));
    EXPECT_THROW(insert->setBigInt(1, ""), e, CHECK(e.getSQLState() == "S1009"));
    {
        std::unique_ptr<sql::PreparedStatement> signedKey(con->prepareStatement("SELECT ? + 0 AS v"));
        signedKey->setBigInt(1, "-9223372036854775808");
        std::unique_ptr<sql::ResultSet> rs(signedKey->executeQuery());
        CHECK(rs->next() && rs->getString("v") == "-9223372036854775808");
    }

    // PreparedStatement used as a Statement: SQL text on the same connection.
    CHECK(runThrough(*insert, "UPDATE extras SET note = 'changed' WHERE id = 2") == 1);
    CHECK(insert->getUpdateCount() == 1);
    CHECK(!insert->execute("DELETE FROM extras WHERE id = 999"));
    CHECK(insert->getUpdateCount() == 0);
    {
        std::unique_ptr<sql::ResultSet> rs(insert->executeQuery("SELECT note FROM extras WHERE id = 2"));
        CHECK(rs->next() && rs->getString(1) == "changed");
        CHECK(insert->getUpdateCount() == UINT64_MAX);
    }

    // Cursor moves and wasNull over a buffered result.
    std::unique_ptr<sql::ResultSet> rs(stmt->executeQuery("SELECT id, at, note FROM extras ORDER BY id"));
    CHECK(stmt->getUpdateCount() == UINT64_MAX);
    CHECK(rs->rowsCount() == 3 && rs->getRow() == 0 && rs->isBeforeFirst());
    CHECK(rs->last() && rs->getRow() == 3 && rs->isLast());
    CHECK(rs->getUInt64("id") == UINT64_MAX && !rs->wasNull());
    CHECK(rs->getString("at") == "2024-03-04 05:06:07");
    CHECK(rs->first() && rs->getRow() == 1 && rs->isFirst());
    CHECK(rs->getUInt64(1) == 1);
    CHECK(rs->getString("note").empty() && rs->wasNull());
    CHECK(rs->getInt("id") == 1 && !rs->wasNull());
    CHECK(rs->next() && rs->getRow() == 2 && rs->getString("note") == "changed");
    CHECK(rs->previous() && rs->getRow() == 1);
    CHECK(!rs->previous() && rs->getRow() == 0 && rs->isBeforeFirst());
    CHECK(rs->absolute(-1) && rs->getRow() == 3);
    CHECK(rs->absolute(2) && rs->getUInt64(1) == 2);
    CHECK(!rs->absolute(4) && rs->getRow() == 0 && rs->isAfterLast());
    EXPECT_THROW(rs->getString(1), e, CHECK(e.status() == VS_ERR_INVALID_ARGUMENT));
    CHECK(!rs->next() && rs->isAfterLast());
    rs->beforeFirst();
    CHECK(rs->next() && rs->getRow() == 1);
    rs->afterLast();
    CHECK(rs->getRow() == 0 && rs->isAfterLast());

    // getSchema follows setSchema; isValid is false (not a throw) once the connection is gone.
    stmt->execute("CREATE DATABASE IF NOT EXISTS extras_other");
    con->setSchema("extras_other");
    CHECK(con->getSchema() == "extras_other");
    pool.ReleaseConnection(con);
    sql::Connection *again = pool.GetConnection();
    CHECK(again->getSchema() == schema);
    again->close();
    CHECK(!again->isValid());
    pool.ReleaseConnection(again);
    std::printf("cpp extras ok\n");
    return 0;
}
