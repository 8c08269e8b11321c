// The pickle VM on hand-assembled pickles: what torch emits, and every way to refuse.
// Real torch output is covered by torch_zip_test.cpp.
#include "io/pickle.h"

#include <gtest/gtest.h>

#include <string>

#include "io_test_util.h"

namespace mamba2 {
namespace {

using iotest::Pk;

Result<std::vector<PickledTensor>> RunPickle(const Pk& p) {
  return ParseTorchPickle(reinterpret_cast<const uint8_t*>(p.b.data()), p.b.size(), "F.pkl");
}

void ExpectError(const Pk& p, std::initializer_list<std::string> fragments) {
  auto r = RunPickle(p);
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("F.pkl"), std::string::npos) << m;
  for (const std::string& f : fragments) EXPECT_NE(m.find(f), std::string::npos) << "missing '" << f << "' in: " << m;
}

TEST(Pickle, ReadsAStateDictLikeTorchWritesIt) {
  Pk p;
  p.proto(2).global("collections", "OrderedDict").put(0).op(')').reduce().put(1).mark();
  p.str("w").tensor_v2("HalfStorage", "0", 12, 2, {2, 3}, {3, 1});
  p.str("b").tensor_v2("FloatStorage", "1", 4, 0, {4}, {1});
  p.op('u');
  // _metadata as torch writes it: BUILD with a dict whose values include nested dicts.
  p.op('}').str("_metadata").get(0).op(')').reduce().str("").op('}').str("version").int1(1).op('s').op('s').op('s');
  p.op('b').stop();
  auto r = RunPickle(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  const PickledTensor& w = (*r)[0];
  EXPECT_EQ(w.name, "w");
  EXPECT_EQ(w.storage_key, "0");
  EXPECT_EQ(w.storage_type, "torch.HalfStorage");
  EXPECT_EQ(w.dtype, DType::F16);
  EXPECT_EQ(w.storage_nbytes, 24u);
  EXPECT_EQ(w.storage_offset, 2);
  EXPECT_EQ(w.sizes, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w.strides, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ((*r)[1].name, "b");
  EXPECT_EQ((*r)[1].dtype, DType::F32);
  EXPECT_EQ((*r)[1].storage_nbytes, 16u);
}

TEST(Pickle, Protocol4OpcodesAndLongIntegers) {
  Pk p;
  p.proto(4).op(0x95).raw(std::string(8, '\0'));  // FRAME
  p.op(0x8c).op(11).raw("collections").op(0x94).op(0x8c).op(11).raw("OrderedDict").op(0x94).op(0x93).op(0x94);
  p.op(')').reduce().op(0x94).op(0x8c).op(1).raw("t");
  p.global("torch._utils", "_rebuild_tensor_v2").mark();
  p.storage("LongStorage", "k", 1 << 20);
  p.op(0x8a).op(5).raw(std::string("\x00\x00\x00\x00\x01", 5));  // LONG1 2^32 as the storage offset
  p.mark().op(0x8a).op(1).raw("\x02").tuple();                  // size (2,)
  p.mark().op(0x8a).op(0).tuple();                              // stride (0,): LONG1 of zero bytes
  p.op(0x88).op('N').tuple().reduce().op('s').stop();
  auto r = RunPickle(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].storage_offset, int64_t(1) << 32);
  EXPECT_EQ((*r)[0].sizes, (std::vector<int64_t>{2}));
  EXPECT_EQ((*r)[0].strides, (std::vector<int64_t>{0}));
  EXPECT_EQ((*r)[0].dtype, DType::I64);
  EXPECT_EQ((*r)[0].storage_nbytes, uint64_t(8) << 20);
}

TEST(Pickle, NegativeLong1IsSignExtended) {
  Pk p;
  p.proto(2).op('}').str("t").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.storage("FloatStorage", "0", 4).op(0x8a).op(2).raw("\xfe\xff");  // -2
  p.ints({1}).ints({1}).op(0x89).op('}').tuple().reduce().op('s').stop();
  ExpectError(p, {"'t'", "negative storage offset -2"});
}

TEST(Pickle, LaterDuplicateKeyWinsInFirstPosition) {
  Pk p;
  p.proto(2).op('}').mark();
  p.str("a").tensor_v2("FloatStorage", "0", 1, 0, {1}, {1});
  p.str("b").tensor_v2("FloatStorage", "1", 1, 0, {1}, {1});
  p.str("a").tensor_v2("FloatStorage", "2", 1, 0, {1}, {1});
  p.op('u').stop();
  auto r = RunPickle(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].name, "a");
  EXPECT_EQ((*r)[0].storage_key, "2");
  EXPECT_EQ((*r)[1].name, "b");
}

TEST(Pickle, RefusesUnknownOpcodeWithHexAndOffset) {
  Pk p;
  p.proto(2).op('I').raw("1\n").stop();  // protocol-0 INT
  ExpectError(p, {"unsupported pickle opcode 0x49 at offset 2 in F.pkl"});
}

TEST(Pickle, RefusesUnknownGlobals) {
  Pk p;
  p.proto(2).global("os", "system").str("echo hi").op(0x85).reduce().stop();
  ExpectError(p, {"unsupported global os.system at offset 2 in F.pkl"});
  Pk q;
  q.proto(4).op(0x8c).op(8).raw("builtins").op(0x8c).op(4).raw("eval").op(0x93).stop();
  ExpectError(q, {"unsupported global builtins.eval"});
}

TEST(Pickle, RefusesNewerProtocol) { ExpectError(Pk().proto(6).op('}').stop(), {"protocol 6"}); }

TEST(Pickle, RefusesTruncationAndStackErrors) {
  ExpectError(Pk().proto(2).op('}'), {"without a STOP"});
  ExpectError(Pk().proto(2).stop(), {"stack underflow"});
  ExpectError(Pk().proto(2).op('}').op('s').stop(), {"stack underflow"});
  ExpectError(Pk().proto(2).get(7).stop(), {"memo key 7"});
  ExpectError(Pk().proto(2).op('X').u32(100).raw("abc").stop(), {"runs past the end"});
  ExpectError(Pk().proto(2).op('t').stop(), {"no MARK"});
  ExpectError(Pk().proto(2).op(0x8a).op(9).raw(std::string(9, '\1')).stop(), {"too large"});
  // Items above a MARK cannot be popped by a plain pop.
  ExpectError(Pk().proto(2).op('}').mark().str("k").op('s').stop(), {"stack underflow"});
  ExpectError(Pk().proto(2).op('c').raw("collections").stop(), {"newline"});
}

TEST(Pickle, RefusesNonStateDicts) {
  ExpectError(Pk().proto(2).op(']').stop(), {"is a list", "state dict"});
  ExpectError(Pk().proto(2).op('}').str("k").int1(3).op('s').stop(), {"'k'", "is a int, not a tensor"});
  ExpectError(Pk().proto(2).op('}').int1(1).int1(3).op('s').stop(), {"key 0", "not a string"});
}

TEST(Pickle, SelfReferenceAndDeepNestingAreHarmless) {
  // A list that contains itself, then 200k nested lists: no leak, no recursion.
  Pk p;
  p.proto(2).op(']').put(0).get(0).op('a').op('0');
  p.op(']').put(1);
  for (int i = 0; i < 200000; ++i) p.op(']').get(1).op('a').put(1).op('0');
  p.get(1).stop();
  ExpectError(p, {"is a list"});
}

TEST(Pickle, RefusesOversizedKeysAndArgumentLists) {
  // Limits that keep memoised objects re-used many times from costing more than linear time.
  Pk p;
  p.proto(2).op('}').str("t").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.mark().str("storage").global("torch", "FloatStorage").str(std::string(100000, '7')).str("cpu").int1(1).tuple();
  p.op('Q').stop();
  ExpectError(p, {"storage key is 100000 bytes long"});
  Pk q;
  q.proto(2).op('}').str(std::string(5000, 'n')).tensor_v2("FloatStorage", "0", 1, 0, {1}, {1}).op('s').stop();
  ExpectError(q, {"key 0 is 5000 bytes long"});
  Pk r;
  r.proto(2).global("collections", "OrderedDict").mark();
  for (int i = 0; i < 100; ++i) r.int1(1);
  r.tuple().reduce().stop();
  ExpectError(r, {"called with 100 arguments"});
  Pk g;
  g.proto(2).global(std::string(300, 'm'), "x").stop();
  ExpectError(g, {"unsupported global mmm"});
}

TEST(Pickle, RefusesUnsupportedDtypesNamingTheTensor) {
  Pk p;
  p.proto(2).op('}').str("mask").tensor_v2("BoolStorage", "0", 4, 0, {4}, {1}).op('s').stop();
  ExpectError(p, {"'mask'", "torch.BoolStorage", "not supported"});
}

TEST(Pickle, RefusesBadLayouts) {
  ExpectError(Pk().proto(2).op('}').str("t").tensor_v2("FloatStorage", "0", 4, 0, {2, 2}, {2}).op('s').stop(),
              {"'t'", "size has 2 dims but stride has 1"});
  ExpectError(Pk().proto(2).op('}').str("t").tensor_v2("FloatStorage", "0", 4, 0, {1, 1, 1, 1, 1}, {1, 1, 1, 1, 1})
                  .op('s').stop(),
              {"'t'", "5 dims"});
  ExpectError(Pk().proto(2).op('}').str("t").tensor_v2("FloatStorage", "0", 4, 0, {2}, {-1}).op('s').stop(),
              {"'t'", "negative size or stride"});
}

TEST(Pickle, RefusesMalformedPersistentIds) {
  Pk p;
  p.proto(2).op('}').str("t").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.mark().str("storage").global("torch", "FloatStorage").str("0").tuple().op('Q');  // 4-tuple
  ExpectError(p, {"persistent id"});
  Pk q;
  q.proto(2).mark().str("module").global("torch", "FloatStorage").str("0").str("cpu").int1(1).tuple().op('Q').stop();
  ExpectError(q, {"'storage'"});
}

TEST(Pickle, RefusesCallingNonFunctions) {
  ExpectError(Pk().proto(2).global("torch", "FloatStorage").op(')').reduce().stop(), {"calling torch.FloatStorage"});
  ExpectError(Pk().proto(2).global("collections", "OrderedDict").int1(1).op(0x85).reduce().stop(),
              {"OrderedDict called with arguments"});
  ExpectError(Pk().proto(2).global("torch._utils", "_rebuild_tensor_v2").op(')').reduce().stop(),
              {"_rebuild_tensor_v2 called with 0 arguments"});
}

}  // namespace
}  // namespace mamba2
