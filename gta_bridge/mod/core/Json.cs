// playmill GTA V recorder: a minimal JSON writer and reader (no dependencies, invariant culture).
// Game-independent: compiled into the mod and into the Mono fake-game runner.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace Playmill.GtaRecorder
{
    /// <summary>Writes one compact JSON value into a StringBuilder. Floats use the shortest round-trip form;
    /// non-finite numbers are written as null (JSON has no NaN).</summary>
    public sealed class JsonWriter
    {
        readonly StringBuilder _sb;
        readonly Stack<bool> _first = new Stack<bool>();
        bool _afterKey;

        public JsonWriter(StringBuilder sb) { _sb = sb; }

        void Separate()
        {
            if (_afterKey) { _afterKey = false; return; }
            if (_first.Count > 0)
            {
                if (!_first.Peek()) _sb.Append(',');
                _first.Pop();
                _first.Push(false);
            }
        }

        public JsonWriter BeginObject() { Separate(); _sb.Append('{'); _first.Push(true); return this; }
        public JsonWriter EndObject() { _first.Pop(); _sb.Append('}'); return this; }
        public JsonWriter BeginArray() { Separate(); _sb.Append('['); _first.Push(true); return this; }
        public JsonWriter EndArray() { _first.Pop(); _sb.Append(']'); return this; }

        public JsonWriter Key(string name)
        {
            Separate();
            WriteString(name);
            _sb.Append(':');
            _afterKey = true;
            return this;
        }

        public JsonWriter Null() { Separate(); _sb.Append("null"); return this; }
        public JsonWriter Bool(bool v) { Separate(); _sb.Append(v ? "true" : "false"); return this; }
        public JsonWriter Int(long v) { Separate(); _sb.Append(v.ToString(CultureInfo.InvariantCulture)); return this; }
        public JsonWriter Str(string v) { Separate(); if (v == null) _sb.Append("null"); else WriteString(v); return this; }

        /// <summary>A double in shortest round-trip form, or null when not finite.</summary>
        public JsonWriter Num(double v)
        {
            Separate();
            _sb.Append(Format.Double(v, "null"));
            return this;
        }

        /// <summary>A float32 game value in its shortest round-trip float32 form, or null when not finite.</summary>
        public JsonWriter Num(float v)
        {
            Separate();
            _sb.Append(Format.Float(v, "null"));
            return this;
        }

        public JsonWriter Vec(Vec3d v)
        {
            BeginArray(); Num(v.X); Num(v.Y); Num(v.Z); return EndArray();
        }

        public JsonWriter Vec(Vec3f v)
        {
            BeginArray(); Num(v.X); Num(v.Y); Num(v.Z); return EndArray();
        }

        void WriteString(string s)
        {
            _sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': _sb.Append("\\\""); break;
                    case '\\': _sb.Append("\\\\"); break;
                    case '\n': _sb.Append("\\n"); break;
                    case '\r': _sb.Append("\\r"); break;
                    case '\t': _sb.Append("\\t"); break;
                    default:
                        if (c < 0x20) _sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else _sb.Append(c);
                        break;
                }
            }
            _sb.Append('"');
        }
    }

    /// <summary>Number formatting shared by the JSON and CSV writers.</summary>
    public static class Format
    {
        public static string Double(double v, string nonFinite)
        {
            if (double.IsNaN(v) || double.IsInfinity(v)) return nonFinite;
            return v.ToString("R", CultureInfo.InvariantCulture);
        }

        public static string Float(float v, string nonFinite)
        {
            if (float.IsNaN(v) || float.IsInfinity(v)) return nonFinite;
            return v.ToString("R", CultureInfo.InvariantCulture);
        }
    }

    /// <summary>Parses JSON text into Dictionary&lt;string, object&gt;, List&lt;object&gt;, double, string, bool or null.</summary>
    public sealed class JsonReader
    {
        readonly string _s;
        int _i;

        JsonReader(string s) { _s = s; }

        public static object Parse(string text)
        {
            var r = new JsonReader(text);
            r.SkipWs();
            object v = r.Value();
            r.SkipWs();
            if (r._i != r._s.Length) throw r.Error("trailing characters");
            return v;
        }

        FormatException Error(string what)
        {
            return new FormatException("JSON: " + what + " at character " + _i.ToString(CultureInfo.InvariantCulture));
        }

        void SkipWs()
        {
            while (_i < _s.Length && (_s[_i] == ' ' || _s[_i] == '\t' || _s[_i] == '\n' || _s[_i] == '\r')) _i++;
        }

        object Value()
        {
            if (_i >= _s.Length) throw Error("unexpected end");
            char c = _s[_i];
            if (c == '{') return Obj();
            if (c == '[') return Arr();
            if (c == '"') return Str();
            if (c == 't') { Expect("true"); return true; }
            if (c == 'f') { Expect("false"); return false; }
            if (c == 'n') { Expect("null"); return null; }
            return Number();
        }

        void Expect(string word)
        {
            if (string.CompareOrdinal(_s, _i, word, 0, word.Length) != 0) throw Error("expected " + word);
            _i += word.Length;
        }

        Dictionary<string, object> Obj()
        {
            var d = new Dictionary<string, object>();
            _i++;
            SkipWs();
            if (_i < _s.Length && _s[_i] == '}') { _i++; return d; }
            while (true)
            {
                SkipWs();
                if (_i >= _s.Length || _s[_i] != '"') throw Error("expected a key");
                string k = Str();
                SkipWs();
                if (_i >= _s.Length || _s[_i] != ':') throw Error("expected ':'");
                _i++;
                SkipWs();
                d[k] = Value();
                SkipWs();
                if (_i >= _s.Length) throw Error("unexpected end in object");
                if (_s[_i] == ',') { _i++; continue; }
                if (_s[_i] == '}') { _i++; return d; }
                throw Error("expected ',' or '}'");
            }
        }

        List<object> Arr()
        {
            var a = new List<object>();
            _i++;
            SkipWs();
            if (_i < _s.Length && _s[_i] == ']') { _i++; return a; }
            while (true)
            {
                SkipWs();
                a.Add(Value());
                SkipWs();
                if (_i >= _s.Length) throw Error("unexpected end in array");
                if (_s[_i] == ',') { _i++; continue; }
                if (_s[_i] == ']') { _i++; return a; }
                throw Error("expected ',' or ']'");
            }
        }

        string Str()
        {
            var sb = new StringBuilder();
            _i++;
            while (true)
            {
                if (_i >= _s.Length) throw Error("unterminated string");
                char c = _s[_i++];
                if (c == '"') return sb.ToString();
                if (c != '\\') { sb.Append(c); continue; }
                if (_i >= _s.Length) throw Error("unterminated escape");
                char e = _s[_i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (_i + 4 > _s.Length) throw Error("bad \\u escape");
                        sb.Append((char)int.Parse(_s.Substring(_i, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        _i += 4;
                        break;
                    default: throw Error("bad escape");
                }
            }
        }

        double Number()
        {
            int start = _i;
            while (_i < _s.Length && "+-0123456789.eE".IndexOf(_s[_i]) >= 0) _i++;
            double v;
            if (_i == start || !double.TryParse(_s.Substring(start, _i - start), NumberStyles.Float,
                                                CultureInfo.InvariantCulture, out v))
                throw Error("bad number");
            return v;
        }
    }
}
