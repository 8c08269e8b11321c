#include "io/pickle.h"

#include <cstdio>
#include <cstring>
#include <iterator>
#include <string_view>
#include <unordered_map>

#include "core/tensor.h"
#include "io/checked_math.h"

namespace mamba2 {
namespace {

enum class Kind : uint8_t { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor };

const char* KindName(Kind k) {
  switch (k) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::Tuple: return "tuple";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
    case Kind::Global: return "global";
    case Kind::Storage: return "storage";
    case Kind::Tensor: return "tensor";
  }
  return "?";
}

// What a whitelisted global stands for.
enum class Fn : uint8_t {
  OrderedDict,
  RebuildTensor,    // torch._utils._rebuild_tensor(storage, offset, size, stride)
  RebuildTensorV2,  // ... + requires_grad, backward_hooks[, metadata]
  RebuildTensorV3,  // ... + requires_grad, backward_hooks, dtype[, metadata]
  RebuildParameter,
  RebuildParameterWithState,
  RebuildFromTypeV2,  // torch._tensor._rebuild_from_type_v2(func, type, args, state)
  TensorClass,        // torch.Tensor / torch.nn.parameter.Parameter, only as a type argument
  ElementType,        // a storage class or a torch dtype; see kElementTypes
};

// Storage classes and dtypes. Unsupported ones are still recognised so that the error can
// name the tensor that uses them.
struct ElementType {
  const char* name;  // qualified, as in the pickle
  bool supported;
  DType dtype;
  uint32_t size;
};
constexpr ElementType kElementTypes[] = {
    {"torch.FloatStorage", true, DType::F32, 4},
    {"torch.HalfStorage", true, DType::F16, 2},
    {"torch.BFloat16Storage", true, DType::BF16, 2},
    {"torch.DoubleStorage", true, DType::F64, 8},
    {"torch.IntStorage", true, DType::I32, 4},
    {"torch.LongStorage", true, DType::I64, 8},
    {"torch.ByteStorage", false, DType::F32, 1},
    {"torch.CharStorage", false, DType::F32, 1},
    {"torch.ShortStorage", false, DType::F32, 2},
    {"torch.BoolStorage", false, DType::F32, 1},
    {"torch.ComplexFloatStorage", false, DType::F32, 8},
    {"torch.ComplexDoubleStorage", false, DType::F32, 16},
    // Byte-typed; newer torch pairs it with _rebuild_tensor_v3's explicit dtype.
    {"torch.UntypedStorage", false, DType::F32, 1},
    {"torch.storage.UntypedStorage", false, DType::F32, 1},
    {"torch.float32", true, DType::F32, 4},
    {"torch.float", true, DType::F32, 4},
    {"torch.float16", true, DType::F16, 2},
    {"torch.half", true, DType::F16, 2},
    {"torch.bfloat16", true, DType::BF16, 2},
    {"torch.float64", true, DType::F64, 8},
    {"torch.double", true, DType::F64, 8},
    {"torch.int32", true, DType::I32, 4},
    {"torch.int", true, DType::I32, 4},
    {"torch.int64", true, DType::I64, 8},
    {"torch.long", true, DType::I64, 8},
    {"torch.uint8", false, DType::F32, 1},
    {"torch.int8", false, DType::F32, 1},
    {"torch.int16", false, DType::F32, 2},
    {"torch.short", false, DType::F32, 2},
    {"torch.bool", false, DType::F32, 1},
    {"torch.uint16", false, DType::F32, 2},
    {"torch.uint32", false, DType::F32, 4},
    {"torch.uint64", false, DType::F32, 8},
    {"torch.float8_e4m3fn", false, DType::F32, 1},
    {"torch.float8_e5m2", false, DType::F32, 1},
    {"torch.float8_e4m3fnuz", false, DType::F32, 1},
    {"torch.float8_e5m2fnuz", false, DType::F32, 1},
    {"torch.complex64", false, DType::F32, 8},
    {"torch.complex128", false, DType::F32, 16},
};

struct KnownGlobal {
  const char* name;
  Fn fn;
};
constexpr KnownGlobal kGlobals[] = {
    {"collections.OrderedDict", Fn::OrderedDict},
    {"torch._utils._rebuild_tensor", Fn::RebuildTensor},
    {"torch._utils._rebuild_tensor_v2", Fn::RebuildTensorV2},
    {"torch._utils._rebuild_tensor_v3", Fn::RebuildTensorV3},
    {"torch._utils._rebuild_parameter", Fn::RebuildParameter},
    {"torch._utils._rebuild_parameter_with_state", Fn::RebuildParameterWithState},
    {"torch._tensor._rebuild_from_type_v2", Fn::RebuildFromTypeV2},
    {"torch.Tensor", Fn::TensorClass},
    {"torch._tensor.Tensor", Fn::TensorClass},
    {"torch.nn.parameter.Parameter", Fn::TensorClass},
};

struct StorageRef {
  uint32_t key;    // the Str object holding the key (not a copy: ids can be re-used many times)
  uint32_t type;   // index into kElementTypes
  uint64_t numel;  // in elements of the storage type
};

struct TensorRef {
  uint32_t storage;  // index into storages_
  int64_t offset = 0;
  std::vector<int64_t> sizes, strides;
  int32_t dtype_type = -1;  // kElementTypes index from _rebuild_tensor_v3, else -1
  bool shapes_ok = true;    // false if size/stride were not tuples of ints
};

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;  // Int/Bool value; Global: Fn; Storage/Tensor: side-table index
  uint32_t type = 0;  // Global ElementType: kElementTypes index
  double f = 0;
  std::string s;                // Str/Bytes payload; Global: qualified name
  std::vector<uint32_t> items;  // Tuple/List elements; Dict: key, value, key, value, ...
};

// Objects live in one arena and refer to each other by index, so self-referencing or deeply
// nested pickles cannot leak or overflow the C++ stack on destruction.
class Vm {
 public:
  Vm(const uint8_t* data, size_t size, const std::string& file) : d_(data), n_(size), file_(file) {}

  Result<uint32_t> Run();
  const Obj& obj(uint32_t i) const { return objs_[i]; }
  const StorageRef& storage(size_t i) const { return storages_[i]; }
  const TensorRef& tensor(size_t i) const { return tensors_[i]; }

 private:
  static constexpr size_t kMaxObjects = 0xfffffff0u;
  // Bounds on what one opcode may copy, so re-using a memoised large object many times
  // stays linear in the input. Real values are far smaller.
  static constexpr size_t kMaxArgs = 8;
  static constexpr size_t kMaxDimsInPickle = 16;
  static constexpr size_t kMaxKeyLength = 256;
  static constexpr size_t kMaxGlobalLength = 128;

  Status Err(const std::string& msg) const {
    return Status::Error(file_ + ": pickle offset " + std::to_string(op_pos_) + ": " + msg);
  }
  bool Have(uint64_t k) const { return k <= n_ - pos_; }
  uint32_t New(Kind k) {
    objs_.emplace_back();
    objs_.back().kind = k;
    return uint32_t(objs_.size() - 1);
  }
  uint32_t NewInt(int64_t v) {
    uint32_t o = New(Kind::Int);
    objs_[o].i = v;
    return o;
  }
  size_t Floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Status Pop(uint32_t* out) {
    if (stack_.size() <= Floor()) return Err("stack underflow");
    *out = stack_.back();
    stack_.pop_back();
    return Status::Ok();
  }
  Status Top(uint32_t* out) const {
    if (stack_.size() <= Floor()) return Err("stack underflow");
    *out = stack_.back();
    return Status::Ok();
  }
  Status PopMark(std::vector<uint32_t>* items) {
    if (marks_.empty()) return Err("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    items->assign(stack_.begin() + m, stack_.end());
    stack_.resize(m);
    return Status::Ok();
  }
  Status ReadU(int bytes, uint64_t* v) {
    if (!Have(bytes)) return Err("truncated operand");
    uint64_t r = 0;
    for (int k = bytes - 1; k >= 0; --k) r = (r << 8) | d_[pos_ + k];
    pos_ += bytes;
    *v = r;
    return Status::Ok();
  }
  Status PushString(Kind k, uint64_t len);
  Status PushLong(uint64_t len);
  Status ReadLine(std::string* out);
  Status PushGlobal(const std::string& module, const std::string& name);
  Status Reduce(uint32_t callable, uint32_t args, uint32_t* out);
  Status MakeTensor(Fn fn, const std::vector<uint32_t>& a, uint32_t* out);
  Status PersistentLoad(uint32_t pid, uint32_t* out);
  bool IntTuple(uint32_t o, std::vector<int64_t>* v) const;

  const uint8_t* d_;
  size_t n_;
  const std::string& file_;
  size_t pos_ = 0, op_pos_ = 0;
  std::vector<Obj> objs_;
  std::vector<StorageRef> storages_;
  std::vector<TensorRef> tensors_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, uint32_t> memo_;
};

Status Vm::PushString(Kind k, uint64_t len) {
  if (!Have(len)) return Err("string of " + std::to_string(len) + " bytes runs past the end of the pickle");
  uint32_t o = New(k);
  objs_[o].s.assign(reinterpret_cast<const char*>(d_ + pos_), size_t(len));
  pos_ += size_t(len);
  stack_.push_back(o);
  return Status::Ok();
}

Status Vm::PushLong(uint64_t len) {
  if (!Have(len)) return Err("integer of " + std::to_string(len) + " bytes runs past the end of the pickle");
  if (len > 8) return Err("integer of " + std::to_string(len) + " bytes is too large");
  uint64_t u = 0;
  for (uint64_t k = len; k-- > 0;) u = (u << 8) | d_[pos_ + k];
  if (len > 0 && len < 8 && (d_[pos_ + len - 1] & 0x80)) u |= ~uint64_t(0) << (8 * len);  // sign-extend
  pos_ += size_t(len);
  stack_.push_back(NewInt(int64_t(u)));
  return Status::Ok();
}

Status Vm::ReadLine(std::string* out) {
  const void* nl = std::memchr(d_ + pos_, '\n', n_ - pos_);
  if (!nl) return Err("GLOBAL name not terminated by a newline");
  const size_t end = size_t(static_cast<const uint8_t*>(nl) - d_);
  out->assign(reinterpret_cast<const char*>(d_ + pos_), end - pos_);
  pos_ = end + 1;
  return Status::Ok();
}

Status Vm::PushGlobal(const std::string& module, const std::string& name) {
  if (module.size() + name.size() > kMaxGlobalLength)
    return Status::Error("unsupported global " + module.substr(0, 60) + "..." + " at offset " +
                         std::to_string(op_pos_) + " in " + file_ + " (only torch tensor state dicts can be loaded)");
  const std::string q = module + "." + name;
  for (const KnownGlobal& g : kGlobals) {
    if (q == g.name) {
      uint32_t o = New(Kind::Global);
      objs_[o].i = int64_t(g.fn);
      objs_[o].s = q;
      stack_.push_back(o);
      return Status::Ok();
    }
  }
  for (size_t t = 0; t < std::size(kElementTypes); ++t) {
    if (q == kElementTypes[t].name) {
      uint32_t o = New(Kind::Global);
      objs_[o].i = int64_t(Fn::ElementType);
      objs_[o].type = uint32_t(t);
      objs_[o].s = q;
      stack_.push_back(o);
      return Status::Ok();
    }
  }
  std::string shown = q.size() > 120 ? q.substr(0, 117) + "..." : q;
  return Status::Error("unsupported global " + shown + " at offset " + std::to_string(op_pos_) + " in " + file_ +
                       " (only torch tensor state dicts can be loaded)");
}

bool Vm::IntTuple(uint32_t o, std::vector<int64_t>* v) const {
  const Obj& t = objs_[o];
  if (t.kind != Kind::Tuple && t.kind != Kind::List) return false;
  if (t.items.size() > kMaxDimsInPickle) return false;
  v->clear();
  for (uint32_t e : t.items) {
    if (objs_[e].kind != Kind::Int) return false;
    v->push_back(objs_[e].i);
  }
  return true;
}

Status Vm::MakeTensor(Fn fn, const std::vector<uint32_t>& a, uint32_t* out) {
  size_t lo = 4, hi = 4;
  const char* fname = "_rebuild_tensor";
  if (fn == Fn::RebuildTensorV2) lo = 6, hi = 7, fname = "_rebuild_tensor_v2";
  if (fn == Fn::RebuildTensorV3) lo = 7, hi = 8, fname = "_rebuild_tensor_v3";
  if (a.size() < lo || a.size() > hi)
    return Err(std::string(fname) + " called with " + std::to_string(a.size()) + " arguments");
  if (objs_[a[0]].kind != Kind::Storage)
    return Err(std::string(fname) + ": first argument is a " + KindName(objs_[a[0]].kind) + ", not a storage");
  if (objs_[a[1]].kind != Kind::Int) return Err(std::string(fname) + ": storage offset is not an int");
  TensorRef t;
  t.storage = uint32_t(objs_[a[0]].i);
  t.offset = objs_[a[1]].i;
  t.shapes_ok = IntTuple(a[2], &t.sizes) && IntTuple(a[3], &t.strides);
  if (fn == Fn::RebuildTensorV3) {
    const Obj& dt = objs_[a[6]];
    if (dt.kind != Kind::Global || Fn(dt.i) != Fn::ElementType)
      return Err("_rebuild_tensor_v3: dtype argument is a " + std::string(KindName(dt.kind)) + ", not a torch dtype");
    t.dtype_type = int32_t(dt.type);
  }
  tensors_.push_back(std::move(t));
  uint32_t o = New(Kind::Tensor);
  objs_[o].i = int64_t(tensors_.size() - 1);
  *out = o;
  return Status::Ok();
}

Status Vm::Reduce(uint32_t callable, uint32_t args, uint32_t* out) {
  const Obj& c = objs_[callable];
  if (c.kind != Kind::Global) return Err(std::string("REDUCE on a ") + KindName(c.kind) + ", not a global");
  if (objs_[args].kind != Kind::Tuple) return Err("REDUCE arguments for " + c.s + " are not a tuple");
  if (objs_[args].items.size() > kMaxArgs)
    return Err(c.s + " called with " + std::to_string(objs_[args].items.size()) + " arguments");
  const std::vector<uint32_t> a = objs_[args].items;  // copy: New() below may move objs_
  const std::string cname = c.s;
  switch (Fn(c.i)) {
    case Fn::OrderedDict:
      if (!a.empty()) return Err("collections.OrderedDict called with arguments; only OrderedDict() is supported");
      *out = New(Kind::Dict);
      return Status::Ok();
    case Fn::RebuildTensor:
    case Fn::RebuildTensorV2:
    case Fn::RebuildTensorV3:
      return MakeTensor(Fn(c.i), a, out);
    case Fn::RebuildParameter:
    case Fn::RebuildParameterWithState:
      if (a.size() < 3 || a.size() > 4 || objs_[a[0]].kind != Kind::Tensor)
        return Err(cname + " expects (tensor, requires_grad, hooks[, state])");
      *out = a[0];
      return Status::Ok();
    case Fn::RebuildFromTypeV2: {
      if (a.size() != 4) return Err(cname + " called with " + std::to_string(a.size()) + " arguments, expected 4");
      const Obj& f = objs_[a[0]];
      const Obj& type = objs_[a[1]];
      if (type.kind != Kind::Global || Fn(type.i) != Fn::TensorClass)
        return Err(cname + ": only torch.Tensor and Parameter types are supported");
      if (f.kind != Kind::Global || Fn(f.i) == Fn::RebuildFromTypeV2 || Fn(f.i) == Fn::OrderedDict)
        return Err(cname + ": its function is not a tensor rebuild function");
      // The state (Python attributes of a tensor subclass) carries no data we need.
      RETURN_IF_ERROR(Reduce(a[0], a[2], out));
      if (objs_[*out].kind != Kind::Tensor) return Err(cname + " did not produce a tensor");
      return Status::Ok();
    }
    case Fn::TensorClass:
    case Fn::ElementType:
      return Err("calling " + cname + " is not supported");
  }
  return Err("bad global");
}

Status Vm::PersistentLoad(uint32_t pid, uint32_t* out) {
  const Obj& p = objs_[pid];
  if (p.kind != Kind::Tuple || p.items.size() != 5)
    return Err("persistent id is not a ('storage', type, key, location, numel) tuple");
  const Obj& tag = objs_[p.items[0]];
  const Obj& type = objs_[p.items[1]];
  const Obj& key = objs_[p.items[2]];
  const Obj& numel = objs_[p.items[4]];
  if (tag.kind != Kind::Str || tag.s != "storage") return Err("persistent id tag is not 'storage'");
  if (type.kind != Kind::Global || Fn(type.i) != Fn::ElementType)
    return Err("persistent id storage type is a " + std::string(KindName(type.kind)) + ", not a storage class");
  if (key.kind != Kind::Str) return Err("persistent id storage key is not a string");
  if (key.s.size() > kMaxKeyLength) return Err("persistent id storage key is " + std::to_string(key.s.size()) + " bytes long");
  if (numel.kind != Kind::Int || numel.i < 0) return Err("persistent id numel is not a non-negative int");
  storages_.push_back(StorageRef{p.items[2], type.type, uint64_t(numel.i)});
  uint32_t o = New(Kind::Storage);
  objs_[o].i = int64_t(storages_.size() - 1);
  *out = o;
  return Status::Ok();
}

Result<uint32_t> Vm::Run() {
  std::vector<uint32_t> items;
  while (true) {
    if (pos_ >= n_) return Err("pickle ends without a STOP opcode (truncated?)");
    if (objs_.size() >= kMaxObjects) return Err("too many objects");
    op_pos_ = pos_;
    const uint8_t op = d_[pos_++];
    uint64_t u = 0;
    uint32_t a = 0, b = 0, c = 0;
    switch (op) {
      case 0x80:  // PROTO
        RETURN_IF_ERROR(ReadU(1, &u));
        if (u > 5) return Err("pickle protocol " + std::to_string(u) + " is newer than 5");
        break;
      case 0x95:  // FRAME: only a read-ahead hint
        RETURN_IF_ERROR(ReadU(8, &u));
        break;
      case '(': marks_.push_back(stack_.size()); break;
      case '.':  // STOP
        RETURN_IF_ERROR(Pop(&a));
        return a;
      case '0':  // POP
        RETURN_IF_ERROR(Pop(&a));
        break;
      case '1':  // POP_MARK
        RETURN_IF_ERROR(PopMark(&items));
        break;
      case '2':  // DUP
        RETURN_IF_ERROR(Top(&a));
        stack_.push_back(a);
        break;
      case 'N': stack_.push_back(New(Kind::None)); break;
      case 0x88:
      case 0x89:
        a = New(Kind::Bool);
        objs_[a].i = op == 0x88;
        stack_.push_back(a);
        break;
      case 'J':  // BININT
        RETURN_IF_ERROR(ReadU(4, &u));
        stack_.push_back(NewInt(int32_t(uint32_t(u))));
        break;
      case 'K':  // BININT1
        RETURN_IF_ERROR(ReadU(1, &u));
        stack_.push_back(NewInt(int64_t(u)));
        break;
      case 'M':  // BININT2
        RETURN_IF_ERROR(ReadU(2, &u));
        stack_.push_back(NewInt(int64_t(u)));
        break;
      case 0x8a:  // LONG1
        RETURN_IF_ERROR(ReadU(1, &u));
        RETURN_IF_ERROR(PushLong(u));
        break;
      case 0x8b:  // LONG4
        RETURN_IF_ERROR(ReadU(4, &u));
        RETURN_IF_ERROR(PushLong(u));
        break;
      case 'G': {  // BINFLOAT, big-endian
        if (!Have(8)) return Err("truncated operand");
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | d_[pos_ + k];
        pos_ += 8;
        a = New(Kind::Float);
        std::memcpy(&objs_[a].f, &bits, 8);
        stack_.push_back(a);
        break;
      }
      case 'X':  // BINUNICODE
        RETURN_IF_ERROR(ReadU(4, &u));
        RETURN_IF_ERROR(PushString(Kind::Str, u));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        RETURN_IF_ERROR(ReadU(1, &u));
        RETURN_IF_ERROR(PushString(Kind::Str, u));
        break;
      case 0x8d:  // BINUNICODE8
        RETURN_IF_ERROR(ReadU(8, &u));
        RETURN_IF_ERROR(PushString(Kind::Str, u));
        break;
      case 'T':  // BINSTRING (signed length); Python 3 decodes these to str
        RETURN_IF_ERROR(ReadU(4, &u));
        if (int32_t(uint32_t(u)) < 0) return Err("BINSTRING with a negative length");
        RETURN_IF_ERROR(PushString(Kind::Str, u));
        break;
      case 'U':  // SHORT_BINSTRING
        RETURN_IF_ERROR(ReadU(1, &u));
        RETURN_IF_ERROR(PushString(Kind::Str, u));
        break;
      case 'B':  // BINBYTES
        RETURN_IF_ERROR(ReadU(4, &u));
        RETURN_IF_ERROR(PushString(Kind::Bytes, u));
        break;
      case 'C':  // SHORT_BINBYTES
        RETURN_IF_ERROR(ReadU(1, &u));
        RETURN_IF_ERROR(PushString(Kind::Bytes, u));
        break;
      case 0x8e:  // BINBYTES8
        RETURN_IF_ERROR(ReadU(8, &u));
        RETURN_IF_ERROR(PushString(Kind::Bytes, u));
        break;
      case ')': stack_.push_back(New(Kind::Tuple)); break;
      case 't':  // TUPLE
        RETURN_IF_ERROR(PopMark(&items));
        a = New(Kind::Tuple);
        objs_[a].items = items;
        stack_.push_back(a);
        break;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const int k = op - 0x84;
        if (stack_.size() < Floor() + size_t(k)) return Err("stack underflow");
        a = New(Kind::Tuple);
        objs_[a].items.assign(stack_.end() - k, stack_.end());
        stack_.resize(stack_.size() - size_t(k));
        stack_.push_back(a);
        break;
      }
      case ']': stack_.push_back(New(Kind::List)); break;
      case 'l':  // LIST
        RETURN_IF_ERROR(PopMark(&items));
        a = New(Kind::List);
        objs_[a].items = items;
        stack_.push_back(a);
        break;
      case 'a':  // APPEND
        RETURN_IF_ERROR(Pop(&b));
        RETURN_IF_ERROR(Top(&a));
        if (objs_[a].kind != Kind::List) return Err(std::string("APPEND to a ") + KindName(objs_[a].kind));
        objs_[a].items.push_back(b);
        break;
      case 'e':  // APPENDS
        RETURN_IF_ERROR(PopMark(&items));
        RETURN_IF_ERROR(Top(&a));
        if (objs_[a].kind != Kind::List) return Err(std::string("APPENDS to a ") + KindName(objs_[a].kind));
        objs_[a].items.insert(objs_[a].items.end(), items.begin(), items.end());
        break;
      case '}': stack_.push_back(New(Kind::Dict)); break;
      case 'd':  // DICT
        RETURN_IF_ERROR(PopMark(&items));
        if (items.size() % 2) return Err("DICT with an odd number of items");
        a = New(Kind::Dict);
        objs_[a].items = items;
        stack_.push_back(a);
        break;
      case 's':  // SETITEM
        RETURN_IF_ERROR(Pop(&c));
        RETURN_IF_ERROR(Pop(&b));
        RETURN_IF_ERROR(Top(&a));
        if (objs_[a].kind != Kind::Dict) return Err(std::string("SETITEM on a ") + KindName(objs_[a].kind));
        objs_[a].items.push_back(b);
        objs_[a].items.push_back(c);
        break;
      case 'u':  // SETITEMS
        RETURN_IF_ERROR(PopMark(&items));
        if (items.size() % 2) return Err("SETITEMS with an odd number of items");
        RETURN_IF_ERROR(Top(&a));
        if (objs_[a].kind != Kind::Dict) return Err(std::string("SETITEMS on a ") + KindName(objs_[a].kind));
        objs_[a].items.insert(objs_[a].items.end(), items.begin(), items.end());
        break;
      case 'q':  // BINPUT
      case 'r':  // LONG_BINPUT
        RETURN_IF_ERROR(ReadU(op == 'q' ? 1 : 4, &u));
        RETURN_IF_ERROR(Top(&a));
        memo_[uint32_t(u)] = a;
        break;
      case 0x94:  // MEMOIZE
        RETURN_IF_ERROR(Top(&a));
        memo_[uint32_t(memo_.size())] = a;
        break;
      case 'h':  // BINGET
      case 'j': {  // LONG_BINGET
        RETURN_IF_ERROR(ReadU(op == 'h' ? 1 : 4, &u));
        auto it = memo_.find(uint32_t(u));
        if (it == memo_.end()) return Err("memo key " + std::to_string(u) + " was never stored");
        stack_.push_back(it->second);
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module, name;
        RETURN_IF_ERROR(ReadLine(&module));
        RETURN_IF_ERROR(ReadLine(&name));
        RETURN_IF_ERROR(PushGlobal(module, name));
        break;
      }
      case 0x93:  // STACK_GLOBAL
        RETURN_IF_ERROR(Pop(&b));
        RETURN_IF_ERROR(Pop(&a));
        if (objs_[a].kind != Kind::Str || objs_[b].kind != Kind::Str) return Err("STACK_GLOBAL operands are not strings");
        RETURN_IF_ERROR(PushGlobal(objs_[a].s, objs_[b].s));
        break;
      case 'R':  // REDUCE
        RETURN_IF_ERROR(Pop(&b));
        RETURN_IF_ERROR(Pop(&a));
        RETURN_IF_ERROR(Reduce(a, b, &c));
        stack_.push_back(c);
        break;
      case 'b':  // BUILD: sets Python attributes (OrderedDict._metadata); nothing we use
        RETURN_IF_ERROR(Pop(&b));
        RETURN_IF_ERROR(Top(&a));
        if (objs_[a].kind != Kind::Dict && objs_[a].kind != Kind::Tensor)
          return Err(std::string("BUILD on a ") + KindName(objs_[a].kind) + " is not supported");
        break;
      case 'Q':  // BINPERSID
        RETURN_IF_ERROR(Pop(&a));
        RETURN_IF_ERROR(PersistentLoad(a, &b));
        stack_.push_back(b);
        break;
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        return Status::Error(std::string("unsupported pickle opcode ") + hex + " at offset " + std::to_string(op_pos_) +
                             " in " + file_);
      }
    }
  }
}

Status CheckTensor(const Vm& vm, const TensorRef& t, const std::string& where, PickledTensor* out) {
  const StorageRef& s = vm.storage(t.storage);
  const std::string& key = vm.obj(s.key).s;
  const ElementType& st = kElementTypes[s.type];
  const ElementType& tt = t.dtype_type >= 0 ? kElementTypes[t.dtype_type] : st;
  if (!tt.supported)
    return Status::Error(where + ": dtype " + std::string(tt.name) +
                         " is not supported (supported: float32, float16, bfloat16, float64, int32, int64)");
  if (!t.shapes_ok) return Status::Error(where + ": size or stride is not a tuple of at most 16 ints");
  if (t.sizes.size() != t.strides.size())
    return Status::Error(where + ": size has " + std::to_string(t.sizes.size()) + " dims but stride has " +
                         std::to_string(t.strides.size()));
  if (t.sizes.size() > size_t(kMaxDims))
    return Status::Error(where + ": " + std::to_string(t.sizes.size()) + " dims, at most " +
                         std::to_string(kMaxDims) + " are supported");
  for (size_t k = 0; k < t.sizes.size(); ++k)
    if (t.sizes[k] < 0 || t.strides[k] < 0)
      return Status::Error(where + ": negative size or stride in dim " + std::to_string(k));
  if (t.offset < 0) return Status::Error(where + ": negative storage offset " + std::to_string(t.offset));
  uint64_t nbytes = 0;
  if (!io_detail::MulU64(s.numel, st.size, &nbytes))
    return Status::Error(where + ": storage '" + key + "' numel " + std::to_string(s.numel) + " overflows");
  out->storage_key = key;
  out->storage_type = st.name;
  out->storage_nbytes = nbytes;
  out->dtype = tt.dtype;
  out->storage_offset = t.offset;
  out->sizes = t.sizes;
  out->strides = t.strides;
  return Status::Ok();
}

}  // namespace

Result<std::vector<PickledTensor>> ParseTorchPickle(const uint8_t* data, size_t size, const std::string& file) {
  Vm vm(data, size, file);
  ASSIGN_OR_RETURN(uint32_t root, vm.Run());
  const Obj& r = vm.obj(root);
  if (r.kind != Kind::Dict)
    return Status::Error(file + ": the pickled object is a " + std::string(KindName(r.kind)) +
                         ", expected a state dict (OrderedDict of tensors)");
  std::vector<PickledTensor> out;
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t k = 0; k + 1 < r.items.size(); k += 2) {
    const Obj& key = vm.obj(r.items[k]);
    const Obj& val = vm.obj(r.items[k + 1]);
    if (key.kind != Kind::Str)
      return Status::Error(file + ": state dict key " + std::to_string(k / 2) + " is a " + KindName(key.kind) +
                           ", not a string");
    // Bounded, so that a memoised huge key re-used in every entry costs little per entry.
    if (key.s.size() > 1024)
      return Status::Error(file + ": state dict key " + std::to_string(k / 2) + " is " + std::to_string(key.s.size()) +
                           " bytes long ('" + key.s.substr(0, 60) + "...')");
    const std::string where = file + ": tensor '" + key.s + "'";
    if (val.kind != Kind::Tensor)
      return Status::Error(where + ": value is a " + std::string(KindName(val.kind)) + ", not a tensor");
    PickledTensor t;
    RETURN_IF_ERROR(CheckTensor(vm, vm.tensor(size_t(val.i)), where, &t));
    auto [it, fresh] = seen.emplace(key.s, out.size());
    if (fresh) {
      t.name = key.s;
      out.push_back(std::move(t));
    } else {
      t.name = std::move(out[it->second].name);
      out[it->second] = std::move(t);
    }
  }
  return out;
}

}  // namespace mamba2
