#include "vs/Connection.h"

namespace vs {

Connection::Connection(VsConn *conn) : state_(std::make_shared<detail::ConnState>()) {
    state_->conn = conn;
}

Connection::~Connection() { close(); }

Statement *Connection::createStatement() {
    state_->get();
    return new Statement(state_);
}

PreparedStatement *Connection::prepareStatement(const std::string &sql) {
    VsStmt *stmt = nullptr;
    detail::check(vs_conn_prepare(state_->get(), sql.c_str(), &stmt));
    try {
        return new PreparedStatement(stmt, state_);
    } catch (...) {
        vs_stmt_free(stmt);
        throw;
    }
}

void Connection::setSchema(const std::string &schema) {
    detail::check(vs_conn_set_schema(state_->get(), schema.c_str()));
}

std::string Connection::getSchema() {
    VsResult *result = nullptr;
    detail::check(vs_conn_query(state_->get(), "SELECT DATABASE()", &result));
    ResultSet rows(result);
    return rows.next() ? rows.getString(1) : std::string();
}

bool Connection::isValid() { return state_->conn != nullptr && vs_conn_ping(state_->conn) == VS_OK; }

bool Connection::isClosed() const noexcept { return state_->conn == nullptr; }

void Connection::close() noexcept {
    vs_conn_release(state_->conn);
    state_->conn = nullptr;
}

void Connection::setAutoCommit(bool autoCommit) {
    // SET autocommit = 0/1 on the server, as Connector/C++ does (turning it on commits what
    // is open); the pool turns it back on when the connection is released.
    detail::check(vs_conn_set_autocommit(state_->get(), autoCommit));
    state_->autoCommit = autoCommit;
}

bool Connection::getAutoCommit() const {
    state_->get();
    return state_->autoCommit;
}

void Connection::commit() { detail::check(vs_conn_commit(state_->get())); }

void Connection::rollback() { detail::check(vs_conn_rollback(state_->get())); }

VsConn *Connection::handle() const { return state_->get(); }

}  // namespace vs
