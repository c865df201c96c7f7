// Shared helpers for the C++ tests.
#ifndef VS_TEST_CHECK_HPP
#define VS_TEST_CHECK_HPP

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            std::exit(1);                                                                \
        }                                                                                \
    } while (0)

// Checks `a op b` on two integers; a failure prints both expressions and both values.
#define CHECK_CMP(a, op, b)                                                              \
    do {                                                                                 \
        long long a_ = static_cast<long long>(a);                                        \
        long long b_ = static_cast<long long>(b);                                        \
        if (!(a_ op b_)) {                                                               \
            std::fprintf(stderr, "%s:%d: check failed: %s %s %s (%lld %s %lld)\n",       \
                         __FILE__, __LINE__, #a, #op, #b, a_, #op, b_);                  \
            std::exit(1);                                                                \
        }                                                                                \
    } while (0)

// Runs `statement`, which must throw vs::SQLException; binds it to `e` for checks.
#define EXPECT_THROW(statement, e, checks)                                               \
    do {                                                                                 \
        bool thrown_ = false;                                                            \
        try {                                                                            \
            statement;                                                                   \
        } catch (const vs::SQLException &e) {                                            \
            thrown_ = true;                                                              \
            checks;                                                                      \
        }                                                                                \
        if (!thrown_) {                                                                  \
            std::fprintf(stderr, "%s:%d: no exception from %s\n", __FILE__, __LINE__,     \
                         #statement);                                                    \
            std::exit(1);                                                                \
        }                                                                                \
    } while (0)

#endif
