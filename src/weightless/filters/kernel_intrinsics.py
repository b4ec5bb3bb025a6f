"""LLVM intrinsics for the numba kernels of the filters (:mod:`.compact_kernels`,
:mod:`.paper_kernels`): population count, trailing zeros, a cache prefetch and the parities of
8 bit-sliced columns in one vector step.

Imported only when numba is available.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["_ctpop64", "_cttz64", "_prefetch", "_par8"]

@intrinsic
def _ctpop64(typingctx, x):  # pragma: no cover - compiled
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, [args[0]])

    return sig, codegen


@intrinsic
def _cttz64(typingctx, x):  # pragma: no cover - compiled
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        fn = builder.module.declare_intrinsic("llvm.cttz", [ir.IntType(64), ir.IntType(1)])
        return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

    return sig, codegen


@intrinsic
def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _par8(typingctx, arr, base, nxt, clo, chi):  # pragma: no cover - compiled
    """Parities of 8 bit-sliced columns: bit ``7 - jj`` of the result is the parity of
    ``(arr[base + jj] & clo) ^ (arr[base + nxt + jj] & chi)`` (one AVX-512 step where present)."""
    sig = types.uint64(arr, base, nxt, clo, chi)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i64 = ir.IntType(64)
        v8 = ir.VectorType(i64, 8)
        i32 = ir.IntType(32)
        p0 = builder.gep(ary.data, [args[1]])
        p1 = builder.gep(ary.data, [builder.add(args[1], args[2])])
        a = builder.load(builder.bitcast(p0, v8.as_pointer()), align=8)
        b = builder.load(builder.bitcast(p1, v8.as_pointer()), align=8)

        def splat(x):
            v = builder.insert_element(ir.Constant(v8, ir.Undefined), x, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, ir.Constant(v8, ir.Undefined), ir.Constant(ir.VectorType(i32, 8), [0] * 8))

        x = builder.xor(builder.and_(a, splat(args[3])), builder.and_(b, splat(args[4])))
        ctpop = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v8, [v8]), "llvm.ctpop.v8i64")
        pc = builder.and_(builder.call(ctpop, [x]), ir.Constant(v8, [1] * 8))
        pc = builder.shl(pc, ir.Constant(v8, [7, 6, 5, 4, 3, 2, 1, 0]))
        red = cgutils.get_or_insert_function(builder.module, ir.FunctionType(i64, [v8]), "llvm.vector.reduce.or.v8i64")
        return builder.call(red, [pc])

    return sig, codegen
