#ifndef MBDATA_CZLIB_SHIM_H
#define MBDATA_CZLIB_SHIM_H
#include <zlib.h>
#endif
