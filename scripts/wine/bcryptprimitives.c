/*
 * A stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks: Rust's std takes its random
 * bytes (HashMap keys, and so every test binary at start-up) from ProcessPrng there. This one
 * passes the call on to RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * scripts/wine-test.sh builds it with mingw-w64 into the test prefix's system32; it is never
 * shipped.
 */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE; /* like Windows' own, which never fails */
}
