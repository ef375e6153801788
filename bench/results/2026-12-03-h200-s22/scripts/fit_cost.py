import re,collections,math
import numpy as np
shapes={'llama3':{'qkv':(4096,6144),'o':(4096,4096),'gate_up':(4096,28672),'down':(14336,4096)},
        'llama2':{'qkv':(4096,12288),'o':(4096,4096),'gate_up':(4096,22016),'down':(11008,4096),'sq8192':(8192,8192)}}
def wbm(m): return 16 if m<=16 else 32 if m<=32 else 64 if m<=64 else 128 if m<=128 else 256 if m<=256 else 128 if m<384 else 256
def rows(bm,w): return 128 if bm==256 else 192 if w==3 else 256
def kseff(KB,k):
    k=min(k,8,max(KB//8,1)); k=max(k,1); kt=-(-KB//k); return -(-KB//kt)
def ksrule(N,K,m,bm,w,sms=132):
    NB=N//16; KB=K//64; B=-(-m//bm)*(-(-N//rows(bm,w)))
    return kseff(KB, max(1,sms//max(B,1)))
cfg=None; rows_=[]
for line in open('bench/results/2026-12-03-h200-s22/call1/sweep.txt'):
    if line.startswith('== '): cfg=line[3:].strip(); continue
    m=re.match(r'(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\|\s+([\d.]+).*\|\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)',line)
    if not m or cfg=='' : continue
    p=cfg.split(); sh=p[0]
    if p[1]=='default': continue
    f=dict(x.split('=') for x in p[1:]); M=int(m[4]); K,N=int(m[2]),int(m[3])
    bm=wbm(M) if f['bm']=='nat' else int(f['bm']); w=int(f['wgs']) if bm in(64,128) else 2
    KB=K//64
    ks=ksrule(N,K,M,bm,w) if f['ks']=='0' else kseff(KB,int(f['ks']))
    rows_.append((sh,m[1],M,K,N,bm,w,ks,float(m[9])))
geoms=sorted(set((r[5],r[6]) for r in rows_))
def feats(M,K,N,bm,w,ks,sms=132):
    R=rows(bm,w); B=-(-M//bm)*(-(-N//R))*ks; rounds=math.ceil(B/sms)
    steps=math.ceil((K//64)/ks)
    U=rounds*R*bm*steps*64/1e6   # "M-unit" of work per SM-round
    P=(ks*M*N*4/1e6 if ks>1 else 0)
    return U,P,rounds,steps
X=[];y=[]
for r in rows_:
    sh,l,M,K,N,bm,w,ks,t=r
    U,P,rounds,steps=feats(M,K,N,bm,w,ks)
    v=[0]*len(geoms); v[geoms.index((bm,w))]=U
    X.append(v+[P,rounds,1]); y.append(t)
X=np.array(X);y=np.array(y)
# weighted relative LSQ
W=1/y
coef,*_=np.linalg.lstsq(X*W[:,None],y*W,rcond=None)
for g,c in zip(geoms,coef): print('geom',g,'us per Munit %.4f'%c)
print('partial us/MB %.4f, per round %.3f, fixed %.3f'%tuple(coef[-3:]))
pred=X@coef; err=np.abs(pred-y)/y; print('median rel err %.3f, 90pct %.3f'%(np.median(err),np.percentile(err,90)))
# selection check: per (sh,l,M), model-best vs measured-best
best=collections.defaultdict(list)
for r,p in zip(rows_,pred): best[(r[0],r[1],r[2])].append((r[8],p,r[5],r[6],r[7]))
loss=[]
for k in sorted(best):
    L=best[k]; mb=min(L); pb=min(L,key=lambda z:z[1])
    loss.append(pb[0]/mb[0])
    if pb[0]/mb[0]>1.03: print(k,'measured best',mb,'model pick',pb)
print('geomean loss of model pick %.4f'%np.exp(np.mean(np.log(loss))))
