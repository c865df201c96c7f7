// The C++ standard the shim needs, checked first by every shim header, and the helper that
// turns a Connector/C++ call the shim does not provide into a compile-time error naming it.
#ifndef VS_CXX11_H
#define VS_CXX11_H

#if !defined(__cplusplus) || __cplusplus < 201103L
#error "the valuestor C++ shim needs C++11 or later: compile with -std=c++11 (g++ 4.8 and later support it)"
#else

namespace vs {
namespace detail {

/// False for every argument list, but only known once a template is instantiated.
template <typename... T>
struct AlwaysFalse {
    static const bool value = false;
};

/// What a not-provided call "returns": converts to anything, so the only error a caller
/// sees is the static_assert that names the call.
struct NotProvided {
    template <typename T>
    operator T() const;
};

}  // namespace detail
}  // namespace vs

/// Declares member `name` as a Connector/C++ call the shim does not provide: any call to it
/// fails to compile with a message naming `name` and saying `why`.
#define VS_NOT_PROVIDED(name, why)                                                         \
    template <typename... VsArgs>                                                          \
    ::vs::detail::NotProvided name(VsArgs &&...) const {                                   \
        static_assert(::vs::detail::AlwaysFalse<VsArgs...>::value,                         \
                      #name "() is not provided by the valuestor C++ shim: " why);          \
        return ::vs::detail::NotProvided();                                                \
    }

#endif  // C++11
#endif
