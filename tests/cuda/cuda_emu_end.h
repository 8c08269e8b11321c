// Ends the stretch of a file where cuda_emu.h's CUDA keyword macros apply: include it after the
// kernel sources, before ordinary code (gtest's included). No include guard: it may end the
// stretch in each file that opens one.
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __align__
