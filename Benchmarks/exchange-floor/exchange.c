// The floor under a tcp all-reduce of one decode row: both sides send 2304
// bytes (576 floats) and then spin on non-blocking recv until the other's
// have come (mode 0), against plain ping-pong (mode 1), on one TCP_NODELAY
// connection. The client times each of 20 000 rounds and prints the p50.
//   exchange s IP MODE PORT   (server, listens on IP:PORT)
//   exchange c IP MODE PORT   (client)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  int server=argv[1][0]=='s'; const char*ip=argv[2]; int mode=atoi(argv[3]); // mode 0 symmetric, 1 ping-pong
  int fd;
  struct sockaddr_in a={0}; a.sin_family=AF_INET; a.sin_port=htons(atoi(argv[4])); inet_pton(AF_INET,ip,&a.sin_addr);
  if(server){int l=socket(AF_INET,SOCK_STREAM,0);int on=1;setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&on,4);bind(l,(void*)&a,sizeof a);listen(l,1);fd=accept(l,0,0);}
  else{fd=socket(AF_INET,SOCK_STREAM,0); while(connect(fd,(void*)&a,sizeof a)<0) usleep(10000);}
  int on=1; setsockopt(fd,IPPROTO_TCP,TCP_NODELAY,&on,4);
  char buf[2304], in[65536]; memset(buf,1,sizeof buf);
  int N=20000; double*t=malloc(N*sizeof(double));
  for(int i=0;i<N;i++){
    double s=now();
    if(!(mode==1 && server)) send(fd,buf,sizeof buf,MSG_NOSIGNAL);
    int got=0; while(got<2304){int n=recv(fd,in,sizeof in,MSG_DONTWAIT); if(n>0)got+=n; else if(n==0){if(!server)fprintf(stderr,"peer closed early\n"); return server?0:1;}}
    if(mode==1 && server) send(fd,buf,sizeof buf,MSG_NOSIGNAL);
    t[i]=now()-s;
  }
  if(!server){qsort(t,N,sizeof(double),cmp); printf("%s p50 %.1f us p99 %.1f\n", mode?"ping-pong rtt":"symmetric exchange", t[N/2], t[N*99/100]);}
  return 0;
}
