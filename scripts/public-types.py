#!/usr/bin/env python3
"""Writes docs/architecture.md's "Public types" section: every type of tests/.../PublicApi.txt with the first sentence
of its XML documentation (from the library's build output). Run after `dotnet build -c Release` when the surface changes;
PublicApiTests checks the listing and that every public type has a line."""
import re, sys, html, xml.etree.ElementTree as ET
root = 'src/Microsoft.ML.DualHeadDistillation'
doc = ET.parse(f'{root}/bin/Release/net10.0/Microsoft.ML.DualHeadDistillation.xml').getroot()
summaries = {}
for m in doc.iter('member'):
    name = m.get('name', '')
    if name.startswith('T:') and m.find('summary') is not None:
        text = ET.tostring(m.find('summary'), encoding='unicode')
        text = re.sub(r'<see (?:cref|langword)="(?:[A-Z]:)?([^"]+)"\s*/>', lambda g: '`' + g.group(1).split('.')[-1].split('`')[0].split('(')[0] + '`', text)
        text = re.sub(r'<paramref name="([^"]+)"\s*/>', r'`\1`', text)
        text = re.sub(r'<c>(.*?)</c>', r'`\1`', text, flags=re.S)
        text = re.sub(r'<[^>]+>', '', text)
        text = html.unescape(' '.join(text.split()))
        first = re.split(r'(?<=[.:;])\s+(?=[A-Z(])', text, maxsplit=1)[0]
        summaries[name[2:]] = first
types = []
for line in open('tests/Microsoft.ML.DualHeadDistillation.Tests/PublicApi.txt'):
    if line[0].isspace(): continue
    full = line.split(' : ')[0].split()[-1]
    key = re.sub(r'<([^<>]+)>$', lambda g: '`' + str(g.group(1).count(',') + 1), full)
    ns, _, short = full.rpartition('.') if '<' not in full else (full[:full.index('<')].rpartition('.')[0], '', full[full[:full.index('<')].rpartition('.')[0].__len__() + 1:])
    types.append((ns, short, summaries.get(key, '').strip()))
out = ['## Public types', '', 'Every public type of the library, by namespace, with the first sentence of its documentation',
       '(`python3 scripts/public-types.py` writes this section from PublicApi.txt; `PublicApiTests` checks it).', '']
for ns in sorted({t[0] for t in types}):
    out.append(f'**{ns}**')
    out.append('')
    for n, (tns, short, s) in enumerate(t for t in types if t[0] == ns):
        out.append(f'- `{short}`: {s or "(no summary)"}')
    out.append('')
p = 'docs/architecture.md'
text = open(p).read()
i = text.find('## Public types')
text = (text[:i].rstrip() + '\n\n' if i >= 0 else text.rstrip() + '\n\n') + '\n'.join(out).rstrip() + '\n'
open(p, 'w').write(text)
print(len(types), 'types;', sum(1 for t in types if not t[2]), 'without a summary')
