/*
 * h2o_abi: the one way the data plane includes libh2o.
 *
 * Debian's libh2o-evloop is built with H2O_USE_LIBUV=0. Its headers default to the libuv flavour, and a mismatch
 * compiles cleanly but lays out h2o_loop_t, h2o_socket_t and h2o_context_t differently from the library: memory
 * corruption at run time. The build defines it (CMakeLists.txt); this guard catches any translation unit that
 * includes <h2o.h> without it.
 */
#ifndef CPH_H2O_ABI_H
#define CPH_H2O_ABI_H

#if !defined(H2O_USE_LIBUV) || H2O_USE_LIBUV != 0
#error "libh2o-evloop needs -DH2O_USE_LIBUV=0: without it the h2o structs do not match the library's ABI"
#endif

#include <h2o.h>
#include <h2o/http1client.h>
#include <h2o/socketpool.h>

#endif
