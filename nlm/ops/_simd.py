"""SIMD-friendly building blocks of the compiled kernels (private).

Intrinsics (bit casts, fused multiply-add, the preferred vector width) and
:func:`_exp2_neg`, the branch-free ``2^-t`` of the weights.  Split from
:mod:`nlm.ops._nlm_kernels`; used by it and by :mod:`nlm.ops._nlm_volume`.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from nlm._config import JIT, VECTOR_WIDTH, defer_blas_probe

defer_blas_probe()  # before any kernel runs: Numba's NumPy support without SciPy (see nlm._config)


@intrinsic
def _wide_vectors(typingctx):
    """Ask LLVM to vectorise the calling function's loops at ``VECTOR_WIDTH`` bits.

    Sets the ``"prefer-vector-width"`` function attribute (see
    :mod:`nlm._config`).  The attribute set of llvmlite only admits its known
    flags, so the string attribute goes in through ``set.add``; should that
    ever fail, the function keeps LLVM's default width.
    """

    def codegen(context, builder, sig, args):
        if VECTOR_WIDTH:
            try:
                set.add(builder.function.attributes, f'"prefer-vector-width"="{VECTOR_WIDTH}"')
            except Exception:  # pragma: no cover - depends on llvmlite internals
                pass
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def _bits_to_float32(typingctx, bits):
    """Reinterpret the bits of an int32 as a float32 (vectorises, unlike ldexp)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _float32_to_bits(typingctx, x):
    """Reinterpret the bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _bits_to_float64(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64."""
    if bits != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _fma(typingctx, a, b, c):
    """a * b + c with one rounding (``llvm.fma``; one instruction, vectorises).

    Numba without ``fastmath`` never contracts ``a * b + c`` itself; the fused
    form is also the more accurate one.
    """
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, sig, args):
        ty = args[0].type
        name = "llvm.fma.f32" if ty == ir.FloatType() else "llvm.fma.f64"
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty, ty, ty]), name)
        return builder.call(fn, args)

    return a(a, a, a), codegen


# 2^-t for t >= 0, branch-free so that LLVM vectorises the weight loops:
# k = round(t), f = t - k in [-1/2, 1/2] (exact), 2^-t = 2^-k p(f) with p the
# Chebyshev fit of 2^-f on [-1/2, 1/2] (mpmath.chebyfit; fit error 1.9e-9 for
# float32, degree 6, and 3.1e-18 for float64, degree 11), evaluated by Horner
# with fused multiply-adds; 2^-k is built in the exponent bits.  Measured
# maximum relative error (tests/test_kernels.py): 7.9e-8 (1.3 ulp) in float32
# over [0, 125], 2.3e-16 in float64 over [0, 1000].  t is clamped at 125
# (float32) / 1000 (float64) so that the result stays a normal number
# (2^-125 ~ 2.4e-38): such weights are 0 for every practical purpose.
_P32 = tuple(
    np.float32(c)
    for c in (1.0, -0.6931472, 0.2402265, -0.05550327, 0.009618057, -0.0013400428, 0.00015461445)
)
_P64 = (
    1.0,
    -0.6931471805599453,
    0.24022650695910158,
    -0.055504108664821625,
    0.009618129107587256,
    -0.001333355814640647,
    0.00015403530463724353,
    -1.5252733841556773e-05,
    1.3215432535912375e-06,
    -1.0178057087733941e-07,
    7.074194297288521e-09,
    -4.4558179083360645e-10,
)
_T32_MAX = np.float32(125.0)
_ROUND32 = np.float32(12582912.0)  # 1.5 * 2^23
_ROUND32_BITS = np.int32(np.float32(12582912.0).view(np.int32) + 127)
#: 1 / ln 2: exp(-a) = 2^-(a / ln 2)
INV_LN2 = 1.4426950408889634


def _exp2_neg(t):
    """2^-t for t >= 0 (pure-Python fallback; the compiled versions are below)."""
    return 2.0 ** (-t)


@overload(_exp2_neg, jit_options=dict(JIT))
def _exp2_neg_ov(t):
    if t == types.float32:

        def impl32(t):
            t = min(t, _T32_MAX)
            # round to nearest by adding 1.5 2^23: k lands in the low mantissa bits
            y = t + _ROUND32
            f = t - (y - _ROUND32)
            p = _fma(_P32[6], f, _P32[5])
            p = _fma(p, f, _P32[4])
            p = _fma(p, f, _P32[3])
            p = _fma(p, f, _P32[2])
            p = _fma(p, f, _P32[1])
            p = _fma(p, f, _P32[0])
            # 2^-k: exponent field 127 - k = (bits(1.5 2^23) + 127) - bits(y)
            return p * _bits_to_float32(np.int32((_ROUND32_BITS - _float32_to_bits(y)) << 23))

        return impl32
    if t == types.float64:

        def impl64(t):
            t = min(t, 1000.0)
            k = np.int64(t + 0.5)
            f = t - np.float64(k)
            p = _fma(_P64[11], f, _P64[10])
            p = _fma(p, f, _P64[9])
            p = _fma(p, f, _P64[8])
            p = _fma(p, f, _P64[7])
            p = _fma(p, f, _P64[6])
            p = _fma(p, f, _P64[5])
            p = _fma(p, f, _P64[4])
            p = _fma(p, f, _P64[3])
            p = _fma(p, f, _P64[2])
            p = _fma(p, f, _P64[1])
            p = _fma(p, f, _P64[0])
            # 2^-k as two factors so that k up to 1000 stays in range
            k1 = k >> 1
            return (p * _bits_to_float64(np.int64((1023 - k1) << 52))) * _bits_to_float64(
                np.int64((1023 - (k - k1)) << 52)
            )

        return impl64
    return None
