// Exact backward flags of a Caffe net, read from the C++ Net that pycaffe does not expose.
//
// Built as a shared library inside a Caffe runtime (see harness/runtimes.py) and loaded by
// harness/worker.py through ctypes, so it shares the libcaffe, glog and protobuf that pycaffe
// already loaded. With -DFLAGS_PROBE_PYTHON (build_probe.sh adds it where Python's and
// boost::python's headers are installed) it reads the flags of the very Net that pycaffe built,
// given the pycaffe object: ccf_flags_net. Otherwise, and always through ccf_flags, it builds
// its own Net from the prototxt file. Also builds as a command (-DFLAGS_PROBE_MAIN) for manual use:
//     flags_probe NET.prototxt TRAIN|TEST [LEVEL [STAGE...]]
//
// For each layer it reports what Net::Init (src/caffe/net.cpp) finally decided, after the
// reverse sweep and force_backward: layer_need_backward(), bottom_need_backward(), each param
// blob's param_propagate_down(j), and the multipliers of the learnable param behind that blob
// (params_lr() / params_weight_decay(), after sharing, resolved through param_owners()).

#ifdef FLAGS_PROBE_PYTHON
#include <boost/python.hpp>  // first: it includes Python.h, which must precede system headers
#endif

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "caffe/blob.hpp"
#include "caffe/layer.hpp"
#include "caffe/net.hpp"

using caffe::Blob;
using caffe::Layer;
using caffe::Net;
using caffe::shared_ptr;
using std::string;
using std::vector;

namespace {

string json_string(const string& s) {
  std::ostringstream out;
  out << '"';
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = s[i];
    if (c == '"' || c == '\\') {
      out << '\\' << c;
    } else if (c < 0x20) {
      static const char hex[] = "0123456789abcdef";
      out << "\\u00" << hex[c >> 4] << hex[c & 15];
    } else {
      out << c;
    }
  }
  out << '"';
  return out.str();
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

string describe(const Net<float>& net) {
  const vector<shared_ptr<Layer<float> > >& layers = net.layers();
  const vector<shared_ptr<Blob<float> > >& params = net.params();
  const vector<Blob<float>*>& learnable = net.learnable_params();
  const vector<int>& owners = net.param_owners();

  // params() lists every layer's blobs in layer order, blob order (Net::Init calls
  // AppendParam(layer_id, param_id) in that order). A sharer's blob is its own Blob object
  // aliasing the owner's data, so its learnable entry is found through param_owners().
  std::ostringstream out;
  out << "{\"layers\": [";
  size_t net_param = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    Layer<float>& layer = *layers[l];
    const size_t num_blobs = layer.blobs().size();
    out << (l ? ", " : "") << "{\"name\": " << json_string(net.layer_names()[l])
        << ", \"type\": " << json_string(layer.type())
        << ", \"need_backward\": " << json_bool(net.layer_need_backward()[l])
        << ", \"bottom_need_backward\": [";
    const vector<bool>& bnb = net.bottom_need_backward()[l];
    for (size_t k = 0; k < bnb.size(); ++k) out << (k ? ", " : "") << json_bool(bnb[k]);
    out << "], \"param_propagate_down\": [";
    for (size_t j = 0; j < num_blobs; ++j)
      out << (j ? ", " : "") << json_bool(layer.param_propagate_down(j));
    std::ostringstream lr, decay, owner;
    lr.precision(9);
    decay.precision(9);
    for (size_t j = 0; j < num_blobs; ++j, ++net_param) {
      const size_t self = owners[net_param] < 0 ? net_param : static_cast<size_t>(owners[net_param]);
      long index = -1;
      for (size_t k = 0; k < learnable.size(); ++k) {
        if (learnable[k] == params[self].get()) { index = static_cast<long>(k); break; }
      }
      const char* sep = j ? ", " : "";
      if (index < 0) {
        lr << sep << "null";
        decay << sep << "null";
      } else {
        lr << sep << net.params_lr()[index];
        decay << sep << net.params_weight_decay()[index];
      }
      owner << sep << owners[net_param];
    }
    out << "], \"param_lr\": [" << lr.str() << "], \"param_decay\": [" << decay.str()
        << "], \"param_owners\": [" << owner.str() << "]}";
  }
  out << "], \"num_params\": " << params.size() << "}";
  return out.str();
}

string describe(const string& net_path, int phase, int level, const vector<string>& stages) {
  Net<float> net(net_path, phase == 0 ? caffe::TRAIN : caffe::TEST, level, &stages);
  return describe(net);
}

char* malloc_copy(const string& text) {
  char* buffer = static_cast<char*>(std::malloc(text.size() + 1));
  if (buffer) std::memcpy(buffer, text.c_str(), text.size() + 1);
  return buffer;
}

vector<string> split_lines(const char* text) {
  vector<string> out;
  std::istringstream in(text ? text : "");
  string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(line);
  return out;
}

}  // namespace

extern "C" {

// Returns a malloc'd JSON document; the caller releases it with ccf_free. A net Caffe refuses
// aborts the process here exactly as it does in pycaffe (glog CHECK), so the worker builds the
// pycaffe Net first and calls this only for nets Caffe accepted.
char* ccf_flags(const char* net_path, int phase, int level, const char* stages_newline_separated) {
  return malloc_copy(describe(net_path, phase, level, split_lines(stages_newline_separated)));
}

#ifdef FLAGS_PROBE_PYTHON
// The flags of the Net behind a pycaffe caffe.Net object. pycaffe registers Net<float> with
// boost::python's converter registry (_caffe.cpp, class_<Net<Dtype>, shared_ptr<...> >), which
// lives in the libboost_python that _caffe.so and this library share, so extract finds the
// C++ object. Call it with the GIL held (ctypes.PyDLL). On a foreign object it sets TypeError
// and returns NULL; NULL without an exception means no memory.
char* ccf_flags_net(PyObject* net_object) {
  boost::python::extract<Net<float>&> net(net_object);
  if (!net.check()) {
    PyErr_SetString(PyExc_TypeError, "ccf_flags_net: the argument is not a pycaffe Net (float)");
    return NULL;
  }
  return malloc_copy(describe(net()));
}
#endif

void ccf_free(char* p) { std::free(p); }

// 2: ccf_flags_net is there too.
#ifdef FLAGS_PROBE_PYTHON
int ccf_version() { return 2; }
#else
int ccf_version() { return 1; }
#endif

}  // extern "C"

#ifdef FLAGS_PROBE_MAIN
#include <iostream>
int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " NET.prototxt TRAIN|TEST [LEVEL [STAGE...]]\n";
    return 2;
  }
  string stages;
  for (int i = 4; i < argc; ++i) stages += string(argv[i]) + "\n";
  char* json = ccf_flags(argv[1], string(argv[2]) == "TEST" ? 1 : 0, argc > 3 ? std::atoi(argv[3]) : 0,
                         stages.c_str());
  std::cout << json << std::endl;
  ccf_free(json);
  return 0;
}
#endif
